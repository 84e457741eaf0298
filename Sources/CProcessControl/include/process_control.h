#ifndef DISCO_PROCESS_CONTROL_H
#define DISCO_PROCESS_CONTROL_H

/* Asks the kernel to send this process `sig` when its parent dies (Linux
   prctl(PR_SET_PDEATHSIG), which is variadic and so not callable from Swift).
   Returns 0, or -1 with errno set. Elsewhere it does nothing and returns 0. */
int disco_set_parent_death_signal(int sig);

#endif
