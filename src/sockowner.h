/* sockowner.h - which program listens on a TCP address, for
 * `portico check`: an address held by a portico (this binary, already
 * serving) is expected, one held by anything else is a clash. Linux
 * only, from /proc: the listening socket's inode in /proc/net/tcp or
 * tcp6, then the process holding a descriptor to it. */
#ifndef PORTICO_SOCKOWNER_H
#define PORTICO_SOCKOWNER_H

#include <stdbool.h>

struct config_addr;

/* True when a process running this same program (by the name of its
 * executable) holds a listening socket bound to a's address and port.
 * False when another program does, or when that cannot be told (a process
 * this user may not inspect). */
bool sockowner_is_portico(const struct config_addr *a);

#endif
