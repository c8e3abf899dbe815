/* tulip/thread.h — included by <tulip.h>; do not include directly. */
#ifndef TULIP_THREAD_H
#define TULIP_THREAD_H
#endif
