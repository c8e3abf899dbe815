/* tulip/sync.h — included by <tulip.h>; do not include directly. */
#ifndef TULIP_SYNC_H
#define TULIP_SYNC_H
#endif
