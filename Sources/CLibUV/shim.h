#ifndef DISCO_CLIBUV_SHIM_H
#define DISCO_CLIBUV_SHIM_H
#include <uv.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <signal.h>
/* Variadic prctl is not callable from Swift: a child started by `disco up` asks the
   kernel to send it `sig` when its parent dies, so no node outlives its launcher. */
static inline int disco_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig); }
#else
static inline int disco_set_parent_death_signal(int sig) { (void)sig; return 0; }
#endif
#endif
