#include "isa.h"
void test_rvc(void) {}
void test_csr(void) {}
void test_traps(void) {}
void test_modes(void) {}
void test_interrupts(void) {}
void test_vm(void) {}
void test_fencei(void) {}
