#include "isa.h"
void test_interrupts(void) {}
void test_vm(void) {}
void test_fencei(void) {}
