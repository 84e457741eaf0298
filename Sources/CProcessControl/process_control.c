#include "process_control.h"

#ifdef __linux__
#include <sys/prctl.h>

int disco_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL);
}
#else
int disco_set_parent_death_signal(int sig) {
    (void)sig;
    return 0;
}
#endif
