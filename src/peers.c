/* peers.c - connections per client address (see peers.h). */
#include "peers.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct peer_entry {
    struct peer_entry *next;
    uint8_t key[16];
    uint32_t count;
};

/* An IPv4 address's key starts with this: the IPv4-mapped IPv6 prefix. */
static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool peer_key_of(const struct sockaddr_storage *sa, uint8_t key[16])
{
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(key, v4mapped, 12);
        memcpy(key + 12, &s4->sin_addr, 4);
        return true;
    }
    if (sa->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

bool peer_key_loopback(const uint8_t key[16])
{
    if (memcmp(key, v4mapped, 12) == 0)
        return key[12] == 127;
    return memcmp(key, &in6addr_loopback, 16) == 0;
}

int peer_table_init(struct peer_table *t)
{
    memset(t->buckets, 0, sizeof t->buckets);
    if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != sizeof t->seed)
        t->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u ^ (uint64_t)(uintptr_t)t;
    return pthread_mutex_init(&t->mu, NULL) == 0 ? 0 : -1;
}

void peer_table_free(struct peer_table *t)
{
    for (size_t i = 0; i < PEER_BUCKETS; i++)
        while (t->buckets[i]) {
            struct peer_entry *e = t->buckets[i];
            t->buckets[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&t->mu);
}

/* A seeded multiply-xorshift mix of the 16 key bytes. */
static size_t bucket_of(const struct peer_table *t, const uint8_t key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = t->seed;
    h = (h ^ a) * 0xff51afd7ed558ccdu;
    h ^= h >> 32;
    h = (h ^ b) * 0xc4ceb9fe1a85ec53u;
    h ^= h >> 29;
    return (size_t)(h % PEER_BUCKETS);
}

static struct peer_entry **find(struct peer_table *t, const uint8_t key[16])
{
    struct peer_entry **pp = &t->buckets[bucket_of(t, key)];
    while (*pp && memcmp((*pp)->key, key, 16) != 0)
        pp = &(*pp)->next;
    return pp;
}

bool peer_table_acquire(struct peer_table *t, const uint8_t key[16], uint32_t limit, bool *counted)
{
    bool ok = true;
    *counted = false;
    pthread_mutex_lock(&t->mu);
    struct peer_entry **pp = find(t, key);
    if (*pp) {
        if ((*pp)->count >= limit)
            ok = false;
        else {
            (*pp)->count++;
            *counted = true;
        }
    } else {
        struct peer_entry *e = malloc(sizeof *e);
        if (e) {
            memcpy(e->key, key, 16);
            e->count = 1;
            e->next = NULL;
            *pp = e;
            *counted = true;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void peer_table_release(struct peer_table *t, const uint8_t key[16])
{
    pthread_mutex_lock(&t->mu);
    struct peer_entry **pp = find(t, key);
    struct peer_entry *e = *pp;
    if (e && --e->count == 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&t->mu);
}
