/* tulip/wait.h — included by <tulip.h>; do not include directly. */
#ifndef TULIP_WAIT_H
#define TULIP_WAIT_H
#endif
