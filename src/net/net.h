/*
 * The network layer: descriptor waits and watchers, socket operations, and
 * later transports, streams, servers and DNS. Everything here submits
 * operations through the flow layer's cio__op_await.
 */
#ifndef CIO_NET_H
#define CIO_NET_H

#include "flow/flow.h"

#endif
