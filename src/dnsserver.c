/* dnsserver.c - the DNS responder's sockets, zone and counters on the main
 * thread's loop (see dnsserver.h); the answers themselves are dns.c's. */
#include "dnsserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dns.h"
#include "limits.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "strbuf.h"
#include "tsjson.h"
#include "tsstatus.h"

/* tailscaled connected to no tailnet has no addresses yet: asked this often. */
#define DNS_STATUS_POLL_MS 60000
/* Answers waiting to be written on one TCP connection: two whole ones. */
#define DNS_TCP_OUT_BYTES (2 * (2 + LIMIT_DNS_ANSWER_BYTES))

/* Why a message got no answer (dns.h's reasons, then the socket side's). */
enum srv_drop { SD_SHORT, SD_RESPONSE, SD_TOO_LARGE, SD_TCP_LIMIT, SD_SEND_FAILED, SD_N };
static const char *const drop_names[SD_N] = {"short", "response", "too_large", "tcp_limit",
                                             "send_failed"};

/* One address answered on: a UDP socket and a TCP listener, same port. */
struct dns_sock {
    struct dnsserver *d;
    struct loop_io udp, tcp;
    struct config_addr want; /* as asked for (the port may be 0) */
    char bound[sizeof((struct config_addr *)0)->text];
    bool udp_more; /* the last wake-up stopped at LIMIT_DNS_UDP_BATCH */
};

struct dns_tcp {
    struct loop_io io;
    struct loop_timer idle;
    struct dnsserver *d;
    struct dns_tcp *prev, *next;
    bool eof;
    size_t inlen, outlen, outoff;
    uint8_t in[2 + LIMIT_DNS_QUERY_BYTES]; /* always room for one whole message */
    uint8_t out[DNS_TCP_OUT_BYTES];
};

struct dnsserver {
    struct loop *loop;
    struct config *cfg; /* a reference; NULL: off */
    struct dns_sock **socks;
    size_t nsocks;
    bool from_status; /* socks are the tailnet addresses tailscaled gave */
    struct dns_tcp *conns;
    size_t nconns;
    struct loop_task more_udp;
    /* The zone answered; names, v4 and v6 are its arrays, owned here. */
    struct dns_zone zone;
    struct dns_name *names;
    struct in_addr *v4;
    struct in6_addr *v6;
    /* Reading the tailnet addresses (no dns.listen). */
    struct tsstatus *status;
    bool failed_logged, waiting_logged;
    uint32_t bind_backoff_ms; /* the addresses could not be bound: asked again after this */
    /* Counters, written and rendered on this thread. */
    uint64_t queries[DNS_QKINDS][DNS_RKINDS];
    uint64_t dropped[SD_N];
    uint64_t malformed, truncated, tcp_queries;
    uint8_t buf[LIMIT_DNS_QUERY_BYTES + 1];
    uint8_t ans[LIMIT_DNS_ANSWER_BYTES];
};

static void count(struct dnsserver *d, const struct dns_result *r, size_t len)
{
    if (r->drop == DNS_DROP_SHORT)
        d->dropped[SD_SHORT]++;
    else if (r->drop == DNS_DROP_RESPONSE)
        d->dropped[SD_RESPONSE]++;
    if (r->malformed)
        d->malformed++;
    if (len) {
        d->queries[r->qkind][r->rkind]++;
        d->truncated += r->truncated;
    }
}

/* ---- UDP ------------------------------------------------------------------- */

static void udp_drain(struct dns_sock *s)
{
    struct dnsserver *d = s->d;
    s->udp_more = false;
    for (int i = 0; i < LIMIT_DNS_UDP_BATCH; i++) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(s->udp.fd, d->buf, sizeof d->buf, MSG_TRUNC, (struct sockaddr *)&from,
                             &fromlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) /* EAGAIN: drained (other errors are ICMP news about earlier answers) */
            return;
        if ((size_t)n > LIMIT_DNS_QUERY_BYTES) {
            d->dropped[SD_TOO_LARGE]++;
            d->malformed++;
            continue;
        }
        struct dns_result r;
        size_t len = dns_answer(&d->zone, d->buf, (size_t)n, false, d->ans, sizeof d->ans, &r);
        count(d, &r, len);
        if (len && sendto(s->udp.fd, d->ans, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                          (struct sockaddr *)&from, fromlen) < 0)
            d->dropped[SD_SEND_FAILED]++;
    }
    /* More may be waiting: go on after the loop's other events. */
    s->udp_more = true;
    loop_task_queue(d->loop, &d->more_udp);
}

static void on_udp(struct loop *l, struct loop_io *io, uint32_t events)
{
    udp_drain(container_of(io, struct dns_sock, udp));
}

static void on_more_udp(struct loop *l, struct loop_task *t)
{
    struct dnsserver *d = container_of(t, struct dnsserver, more_udp);
    for (size_t i = 0; i < d->nsocks; i++)
        if (d->socks[i]->udp_more)
            udp_drain(d->socks[i]);
}

/* ---- TCP ------------------------------------------------------------------- */

static void tcp_close(struct dns_tcp *t)
{
    struct dnsserver *d = t->d;
    loop_io_del(d->loop, &t->io);
    loop_timer_disarm(d->loop, &t->idle);
    close(t->io.fd);
    if (t->prev)
        t->prev->next = t->next;
    else
        d->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    d->nconns--;
    free(t);
}

static bool tcp_whole_message(const struct dns_tcp *t)
{
    return t->inlen >= 2 && t->inlen >= 2u + (size_t)(t->in[0] << 8 | t->in[1]);
}

/* Answer every whole message while the answers fit, write them, read
 * more; until the socket would block either way, or the connection ends. */
static void tcp_run(struct dns_tcp *t)
{
    struct dnsserver *d = t->d;
    for (;;) {
        while (t->inlen >= 2 && sizeof t->out - t->outlen >= 2 + LIMIT_DNS_ANSWER_BYTES) {
            size_t mlen = (size_t)(t->in[0] << 8 | t->in[1]);
            if (mlen > LIMIT_DNS_QUERY_BYTES) { /* no way to skip it: the stream ends */
                d->dropped[SD_TOO_LARGE]++;
                d->malformed++;
                tcp_close(t);
                return;
            }
            if (t->inlen < 2 + mlen)
                break;
            struct dns_result r;
            size_t n = dns_answer(&d->zone, t->in + 2, mlen, true, t->out + t->outlen + 2,
                                  LIMIT_DNS_ANSWER_BYTES, &r);
            count(d, &r, n);
            if (n) {
                d->tcp_queries++;
                t->out[t->outlen] = (uint8_t)(n >> 8);
                t->out[t->outlen + 1] = (uint8_t)n;
                t->outlen += 2 + n;
            }
            memmove(t->in, t->in + 2 + mlen, t->inlen - 2 - mlen);
            t->inlen -= 2 + mlen;
            loop_timer_arm(d->loop, &t->idle, TIMEOUT_DNS_TCP_IDLE_MS);
        }
        while (t->outoff < t->outlen) {
            ssize_t n = send(t->io.fd, t->out + t->outoff, t->outlen - t->outoff, MSG_NOSIGNAL);
            if (n > 0) {
                t->outoff += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return; /* EPOLLOUT comes back here */
            tcp_close(t);
            return;
        }
        t->outoff = t->outlen = 0;
        if (tcp_whole_message(t))
            continue;
        if (t->eof) {
            tcp_close(t);
            return;
        }
        ssize_t n = read(t->io.fd, t->in + t->inlen, sizeof t->in - t->inlen);
        if (n > 0) {
            t->inlen += (size_t)n;
            continue;
        }
        if (n == 0) {
            t->eof = true;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            tcp_close(t);
        return;
    }
}

static void on_tcp_io(struct loop *l, struct loop_io *io, uint32_t events)
{
    tcp_run(container_of(io, struct dns_tcp, io));
}

static void on_tcp_idle(struct loop *l, struct loop_timer *tm)
{
    tcp_close(container_of(tm, struct dns_tcp, idle));
}

static void on_tcp_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct dns_sock *s = container_of(io, struct dns_sock, tcp);
    struct dnsserver *d = s->d;
    for (;;) { /* edge-triggered: until EAGAIN */
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0)
            return;
        struct dns_tcp *t = d->nconns < LIMIT_DNS_TCP_CONNS ? calloc(1, sizeof *t) : NULL;
        if (!t) {
            d->dropped[SD_TCP_LIMIT]++;
            close(fd);
            continue;
        }
        t->d = d;
        loop_timer_init(&t->idle, on_tcp_idle);
        if (loop_io_add(l, &t->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_tcp_io) < 0) {
            close(fd);
            free(t);
            continue;
        }
        t->next = d->conns;
        if (d->conns)
            d->conns->prev = t;
        d->conns = t;
        d->nconns++;
        loop_timer_arm(l, &t->idle, TIMEOUT_DNS_TCP_IDLE_MS);
    }
}

/* ---- sockets --------------------------------------------------------------- */

static void sock_close(struct dns_sock *s)
{
    struct dnsserver *d = s->d;
    if (s->udp.fd >= 0) {
        loop_io_del(d->loop, &s->udp);
        close(s->udp.fd);
    }
    if (s->tcp.fd >= 0) {
        loop_io_del(d->loop, &s->tcp);
        close(s->tcp.fd);
    }
    free(s);
}

static int bind_one(int type, const struct config_addr *a, uint16_t port, int *out)
{
    int one = 1;
    struct sockaddr_storage sa = a->sa;
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(port);
    int fd = socket(sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* SO_REUSEPORT: the portico replacing this one on an upgrade binds the
     * same address while this one drains. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (sa.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* Accepted connections inherit it: a pipelined answer is not held
     * back behind the previous one's ACK. */
    if (type == SOCK_STREAM)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, a->salen) < 0 ||
        (type == SOCK_STREAM && listen(fd, LIMIT_DNS_TCP_CONNS) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *out = fd;
    return 0;
}

static uint16_t port_of(const struct sockaddr_storage *sa)
{
    return ntohs(sa->ss_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                          : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* UDP first (port 0 gets its port there), then TCP on the same port. */
static struct dns_sock *sock_open(struct dnsserver *d, const struct config_addr *a, char *err,
                                  size_t errlen)
{
    struct dns_sock *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "dns.listen %s: out of memory", a->text);
        return NULL;
    }
    s->d = d;
    s->want = *a;
    s->udp.fd = s->tcp.fd = -1;
    int ufd = -1, tfd = -1;
    struct sockaddr_storage got;
    socklen_t glen = sizeof got;
    const char *what = "UDP";
    if (bind_one(SOCK_DGRAM, a, port_of(&a->sa), &ufd) < 0 ||
        getsockname(ufd, (struct sockaddr *)&got, &glen) < 0 ||
        (what = "TCP", bind_one(SOCK_STREAM, a, port_of(&got), &tfd) < 0)) {
        snprintf(err, errlen, "dns.listen %s (%s): %s%s", a->text, what, strerror(errno),
                 errno == EACCES          ? " (port 53 needs root or CAP_NET_BIND_SERVICE)"
                 : errno == EADDRNOTAVAIL ? " (no interface has this address)"
                                          : "");
        if (ufd >= 0)
            close(ufd);
        free(s);
        return NULL;
    }
    char ip[INET6_ADDRSTRLEN];
    if (got.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&got)->sin_addr, ip, sizeof ip);
        snprintf(s->bound, sizeof s->bound, "%s:%u", ip, port_of(&got));
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&got)->sin6_addr, ip, sizeof ip);
        snprintf(s->bound, sizeof s->bound, "[%s]:%u", ip, port_of(&got));
    }
    if (loop_io_add(d->loop, &s->udp, ufd, EPOLLIN | EPOLLET, on_udp) < 0) {
        snprintf(err, errlen, "dns.listen %s: %s", a->text, strerror(errno));
        close(ufd);
        close(tfd);
        free(s);
        return NULL;
    }
    if (loop_io_add(d->loop, &s->tcp, tfd, EPOLLIN | EPOLLET, on_tcp_accept) < 0) {
        snprintf(err, errlen, "dns.listen %s: %s", a->text, strerror(errno));
        sock_close(s); /* both fds are in s by now */
        return NULL;
    }
    udp_drain(s); /* datagrams that came before the watch (edge-triggered) */
    return s;
}

static bool same_want(const struct config_addr *a, const struct config_addr *b)
{
    return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

static void log_listening(const struct dns_sock *s)
{
    const char *kv[] = {"listener", "dns", "addr", s->bound};
    log_fields(LOG_INFO, "listening", kv, 2);
}

/* Answer on exactly addrs: unchanged addresses keep their sockets, new ones
 * are opened, the rest closed. On an error nothing changes. logged: say
 * "listening" for each new one (when not at start or reload, whose lines
 * come from run.c). */
static int socks_set(struct dnsserver *d, const struct config_addr *addrs, size_t n, bool logged,
                     char *err, size_t errlen)
{
    struct dns_sock **ns = calloc(n ? n : 1, sizeof *ns);
    bool *kept = calloc(d->nsocks ? d->nsocks : 1, sizeof *kept);
    bool *fresh = calloc(n ? n : 1, sizeof *fresh);
    int rc = 0;
    if (!ns || !kept || !fresh) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        for (size_t k = 0; k < d->nsocks && !ns[i]; k++)
            if (!kept[k] && same_want(&d->socks[k]->want, &addrs[i])) {
                ns[i] = d->socks[k];
                kept[k] = true;
            }
        if (!ns[i]) {
            if (!(ns[i] = sock_open(d, &addrs[i], err, errlen)))
                rc = -1;
            fresh[i] = ns[i] != NULL;
        }
    }
    if (rc < 0) {
        for (size_t i = 0; ns && fresh && i < n; i++)
            if (fresh[i])
                sock_close(ns[i]);
        free(ns);
    } else {
        for (size_t k = 0; k < d->nsocks; k++)
            if (!kept[k])
                sock_close(d->socks[k]);
        free(d->socks);
        d->socks = ns;
        d->nsocks = n;
        for (size_t i = 0; logged && i < n; i++)
            if (fresh[i])
                log_listening(ns[i]);
    }
    free(kept);
    free(fresh);
    return rc;
}

/* ---- the zone -------------------------------------------------------------- */

/* The zone from c: its zones, its services' hosts, and the answer
 * addresses (dns.answer, else the addresses answered on). */
static int zone_build(struct dnsserver *d, const struct config *c)
{
    const struct config_dns *dc = &c->dns;
    size_t nhosts = 0;
    for (size_t i = 0; i < c->nservices; i++)
        nhosts += c->services[i].nhosts;
    bool own = dc->nanswer4 + dc->nanswer6 > 0;
    size_t n4 = own ? dc->nanswer4 : 0, n6 = own ? dc->nanswer6 : 0;
    for (size_t i = 0; !own && i < d->nsocks; i++)
        d->socks[i]->want.sa.ss_family == AF_INET ? n4++ : n6++;
    struct dns_name *names = calloc(dc->nzones + nhosts, sizeof *names);
    struct in_addr *v4 = calloc(n4 ? n4 : 1, sizeof *v4);
    struct in6_addr *v6 = calloc(n6 ? n6 : 1, sizeof *v6);
    if (!names || !v4 || !v6) {
        free(names);
        free(v4);
        free(v6);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < dc->nzones; i++)
        if (dns_name_from_text(dc->zones[i], &names[k]) == 0)
            k++;
    size_t nzones = k;
    for (size_t i = 0; i < c->nservices; i++)
        for (size_t h = 0; h < c->services[i].nhosts; h++)
            if (dns_name_from_text(c->services[i].hosts[h], &names[k]) == 0)
                k++;
    if (own) {
        memcpy(v4, dc->answer4, n4 * sizeof *v4);
        memcpy(v6, dc->answer6, n6 * sizeof *v6);
    } else {
        n4 = n6 = 0;
        for (size_t i = 0; i < d->nsocks; i++) {
            const struct sockaddr_storage *sa = &d->socks[i]->want.sa;
            if (sa->ss_family == AF_INET)
                v4[n4++] = ((const struct sockaddr_in *)sa)->sin_addr;
            else
                v6[n6++] = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        }
    }
    free(d->names);
    free(d->v4);
    free(d->v6);
    d->names = names;
    d->v4 = v4;
    d->v6 = v6;
    /* The serial only grows: the time of the change, or one more. */
    uint32_t serial = (uint32_t)time(NULL);
    d->zone = (struct dns_zone){
        .zones = names,
        .nzones = nzones,
        .hosts = names + nzones,
        .nhosts = k - nzones,
        .v4 = v4,
        .nv4 = n4,
        .v6 = v6,
        .nv6 = n6,
        .ttl_s = dc->ttl_ms / 1000,
        .serial = serial > d->zone.serial ? serial : d->zone.serial + 1,
    };
    return 0;
}

/* ---- the tailnet addresses -------------------------------------------------- */

/* The status's TailscaleIPs as port-53 addresses, then the sockets; when
 * they cannot be bound (yet), asked again with back-off. */
static uint32_t use_status(struct dnsserver *d, const struct tsjson_status *st)
{
    struct config_addr addrs[LIMIT_TS_ADDRS];
    size_t n = 0;
    char err[512];
    for (size_t i = 0; i < st->ips.n && n < LIMIT_TS_ADDRS; i++) {
        char text[sizeof addrs[0].text];
        snprintf(text, sizeof text, strchr(st->ips.v[i], ':') ? "[%s]:53" : "%s:53", st->ips.v[i]);
        if (config_parse_listen_addr(text, &addrs[n], err, sizeof err) == 0 && !addrs[n].host[0])
            n++;
    }
    if (socks_set(d, addrs, n, true, err, sizeof err) < 0) {
        if (!d->failed_logged)
            log_msg(LOG_ERROR,
                    "dns: cannot answer on the tailnet addresses: %s; retrying with back-off "
                    "(with tailscaled in userspace-networking mode no local socket can have "
                    "them: set dns.listen)",
                    err);
        d->failed_logged = true;
        d->bind_backoff_ms =
            d->bind_backoff_ms ? d->bind_backoff_ms * 2 : TIMEOUT_TS_PUBLISH_RETRY_MS;
        if (d->bind_backoff_ms > TIMEOUT_TS_PUBLISH_RETRY_MAX_MS)
            d->bind_backoff_ms = TIMEOUT_TS_PUBLISH_RETRY_MAX_MS;
        return d->bind_backoff_ms;
    }
    d->from_status = true;
    d->bind_backoff_ms = 0;
    if (d->failed_logged)
        log_msg(LOG_INFO, "dns: answering on the tailnet addresses now");
    d->failed_logged = false;
    if (zone_build(d, d->cfg) < 0)
        log_msg(LOG_ERROR, "dns: out of memory; the zone is not updated");
    return 0;
}

static uint32_t on_status(void *arg, const struct tsjson_status *st, const char *error)
{
    struct dnsserver *d = arg;
    if (!d->cfg)
        return 0;
    if (!st) {
        if (!d->failed_logged)
            log_msg(LOG_WARN,
                    "dns: cannot read tailscaled's status for the tailnet addresses: %s; "
                    "retrying with back-off",
                    error);
        d->failed_logged = true;
        return 0;
    }
    if (st->ips.n == 0) {
        if (!d->waiting_logged)
            log_msg(LOG_WARN,
                    "dns: tailscaled has no tailnet addresses (BackendState %s); checking again "
                    "every %u s",
                    st->backend_state && st->backend_state[0] ? st->backend_state : "unknown",
                    DNS_STATUS_POLL_MS / 1000);
        d->waiting_logged = true;
        return DNS_STATUS_POLL_MS;
    }
    d->waiting_logged = false;
    return use_status(d, st);
}

/* ---- metrics ----------------------------------------------------------------- */

static void render(struct strbuf *o, const void *arg)
{
    const struct dnsserver *d = arg;
    uint64_t any = d->malformed | d->truncated;
    for (int q = 0; q < DNS_QKINDS; q++)
        for (int r = 0; r < DNS_RKINDS; r++)
            any |= d->queries[q][r];
    for (int k = 0; k < SD_N; k++)
        any |= d->dropped[k];
    if (!d->cfg && !any) /* never configured: the scrape stays as it was */
        return;
    strbuf_printf(o, "# HELP portico_dns_queries_total DNS queries answered, by question type "
                     "and response code.\n"
                     "# TYPE portico_dns_queries_total counter\n");
    for (int q = 0; q < DNS_QKINDS; q++)
        for (int r = 0; r < DNS_RKINDS; r++)
            if (d->queries[q][r])
                strbuf_printf(o, "portico_dns_queries_total{type=\"%s\",rcode=\"%s\"} %llu\n",
                              dns_qkind_name((enum dns_qkind)q), dns_rkind_name((enum dns_rkind)r),
                              (unsigned long long)d->queries[q][r]);
    strbuf_printf(o,
                  "# HELP portico_dns_malformed_total DNS messages that were not one well-formed "
                  "query (answered FORMERR, or dropped).\n"
                  "# TYPE portico_dns_malformed_total counter\n"
                  "portico_dns_malformed_total %llu\n"
                  "# HELP portico_dns_truncated_total UDP answers sent truncated (TC) so that the "
                  "client asks again over TCP.\n"
                  "# TYPE portico_dns_truncated_total counter\n"
                  "portico_dns_truncated_total %llu\n"
                  "# HELP portico_dns_tcp_queries_total DNS queries answered over TCP.\n"
                  "# TYPE portico_dns_tcp_queries_total counter\n"
                  "portico_dns_tcp_queries_total %llu\n"
                  "# HELP portico_dns_dropped_total DNS messages given no answer, by reason.\n"
                  "# TYPE portico_dns_dropped_total counter\n",
                  (unsigned long long)d->malformed, (unsigned long long)d->truncated,
                  (unsigned long long)d->tcp_queries);
    for (int k = 0; k < SD_N; k++)
        strbuf_printf(o, "portico_dns_dropped_total{reason=\"%s\"} %llu\n", drop_names[k],
                      (unsigned long long)d->dropped[k]);
}

/* ---- the API ----------------------------------------------------------------- */

struct dnsserver *dnsserver_new(struct loop *l)
{
    struct dnsserver *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = l;
    if (!(d->status = tsstatus_new(l, on_status, d))) {
        free(d);
        return NULL;
    }
    loop_task_init(&d->more_udp, on_more_udp);
    metrics_attach_dns(render, d);
    return d;
}

int dnsserver_apply(struct dnsserver *d, struct config *c, char *err, size_t errlen)
{
    if (!c || !c->dns.enabled) {
        char ignored[8];
        tsstatus_stop(d->status);
        socks_set(d, NULL, 0, false, ignored, sizeof ignored);
        d->from_status = false;
        config_unref(d->cfg);
        d->cfg = NULL;
        d->zone.nzones = 0; /* nothing is asked any more; refused if it were */
        return 0;
    }
    if (c->dns.nlisten) {
        if (socks_set(d, c->dns.listen, c->dns.nlisten, false, err, errlen) < 0)
            return -1;
        tsstatus_stop(d->status);
        d->from_status = false;
    } else if (!d->from_status) {
        char ignored[8]; /* the configured addresses go; the tailnet ones come with the status */
        socks_set(d, NULL, 0, false, ignored, sizeof ignored);
    }
    config_unref(d->cfg);
    d->cfg = config_ref(c);
    if (zone_build(d, c) < 0) {
        snprintf(err, errlen, "dns: out of memory");
        return -1;
    }
    if (!c->dns.nlisten) { /* the tailnet addresses, read again on every reload */
        d->bind_backoff_ms = 0;
        tsstatus_ask(d->status, c->tailscale.socket);
    }
    return 0;
}

void dnsserver_log_listeners(const struct dnsserver *d)
{
    for (size_t i = 0; d && i < d->nsocks; i++)
        log_listening(d->socks[i]);
}

void dnsserver_free(struct dnsserver *d)
{
    if (!d)
        return;
    metrics_attach_dns(NULL, NULL);
    tsstatus_free(d->status);
    loop_task_cancel(d->loop, &d->more_udp);
    while (d->conns)
        tcp_close(d->conns);
    for (size_t i = 0; i < d->nsocks; i++)
        sock_close(d->socks[i]);
    free(d->socks);
    config_unref(d->cfg);
    free(d->names);
    free(d->v4);
    free(d->v6);
    free(d);
}
