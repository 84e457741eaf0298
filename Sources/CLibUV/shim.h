#ifndef DISCO_CLIBUV_SHIM_H
#define DISCO_CLIBUV_SHIM_H
#include <uv.h>
#endif
