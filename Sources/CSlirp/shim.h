#ifndef DISCO_CSLIRP_SHIM_H
#define DISCO_CSLIRP_SHIM_H
/* Debian's libslirp-dev (the user-mode network stack QEMU's -nic user uses). Its
 * pkg-config file wants glib's, which nothing here needs: the header is included by
 * path and the library linked by name. */
#include <poll.h>
#include <slirp/libslirp.h>
#endif
