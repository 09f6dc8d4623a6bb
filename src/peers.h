/* peers.h - open client connections counted by client address, shared by
 * all workers, for limits.max_connections_per_client.
 *
 * The address counted is the one portico sees for the client: the source
 * of the PROXY header on a proxy_protocol listener, else the socket's
 * peer. Unix-socket peers have no address and are not counted, nor is a
 * socket peer at a loopback address: that is a frontend on this host
 * (tailscale serve, a local reverse proxy, hairpin clients) bringing many
 * users from one address. */
#ifndef PORTICO_PEERS_H
#define PORTICO_PEERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define PEER_BUCKETS 4096 /* entries are at most the open connections */

struct peer_entry;

struct peer_table {
    pthread_mutex_t mu;
    uint64_t seed; /* random: clients cannot aim at one bucket */
    struct peer_entry *buckets[PEER_BUCKETS];
};

/* The key for a client address: IPv4 as its IPv4-mapped IPv6 form. false
 * for an address that is not IP (a Unix socket). */
bool peer_key_of(const struct sockaddr_storage *sa, uint8_t key[16]);

/* Whether key is a loopback address: 127.0.0.0/8 (also IPv4-mapped) or ::1. */
bool peer_key_loopback(const uint8_t key[16]);

int peer_table_init(struct peer_table *t);
void peer_table_free(struct peer_table *t);

/* Count one more connection from key unless limit (at least 1) are open
 * already (then false, nothing counted). Out of memory counts nothing and says true:
 * the limit fails open rather than refusing everyone. *counted says
 * whether peer_table_release must be called. */
bool peer_table_acquire(struct peer_table *t, const uint8_t key[16], uint32_t limit, bool *counted);
void peer_table_release(struct peer_table *t, const uint8_t key[16]);

#endif
