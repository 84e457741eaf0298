#include "isa.h"
void test_fencei(void) {}
