/* bench/uring_echo.c - would io_uring save portico CPU per small request?
 *
 * A bounded experiment, not part of portico: one server process answers
 * CONNS (64) loopback connections, each with one 50-byte request in flight,
 * with 150 bytes, the way portico's loop does a keep-alive exchange's I/O,
 * in one of three ways:
 *   epoll     edge-triggered epoll, one recv and one writev per request
 *             (portico's loop: one short read takes all that is queued)
 *   uring     io_uring: a recv kept armed per connection, the send and the
 *             next recv submitted together, one io_uring_enter per loop turn
 *   uring-dt  the same with IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN
 * and prints the server's CPU time (utime+stime) per request over SECONDS.
 * The client is the same epoll loop in every mode. Run the modes in turn,
 * several rounds (bench/uring_echo.sh).
 *
 *   cc -O2 -o uring_echo bench/uring_echo.c -luring   (liburing-dev)
 *   ./uring_echo epoll|uring|uring-dt SECONDS */
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#define CONNS 64
static char req[50], resp[150];
static volatile sig_atomic_t stop;
static void on_term(int s)
{
    (void)s;
    stop = 1;
}
static long served;

static void serve_epoll(int l)
{
    int ep = epoll_create1(0), fds[CONNS];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = accept(l, 0, 0);
        int one = 1;
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, 4);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    char buf[65536];
    struct epoll_event evs[64];
    while (!stop) {
        int n = epoll_wait(ep, evs, 64, 100);
        for (int k = 0; k < n; k++) {
            int fd = fds[evs[k].data.u32];
            ssize_t r = recv(fd, buf, sizeof buf, 0); /* one short read takes all (portico's rule) */
            if (r <= 0)
                continue;
            struct iovec v[2] = {{resp, 100}, {resp + 100, 50}}; /* head + body in one writev */
            writev(fd, v, 2);
            served++;
        }
    }
}

static void serve_uring(int l, unsigned flags)
{
    struct io_uring ring;
    struct io_uring_params p = {.flags = flags};
    if (io_uring_queue_init_params(256, &ring, &p) < 0) {
        perror("io_uring_queue_init_params");
        exit(1);
    }
    int fds[CONNS];
    static char bufs[CONNS][4096];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = accept(l, 0, 0);
        int one = 1;
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, 4);
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_recv(sqe, fds[i], bufs[i], sizeof bufs[i], 0);
        io_uring_sqe_set_data64(sqe, (uint64_t)i << 1);
    }
    struct __kernel_timespec ts = {0, 100000000};
    while (!stop) {
        struct io_uring_cqe *cqe;
        if (io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL) < 0 && !cqe)
            continue;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            seen++;
            uint64_t d = io_uring_cqe_get_data64(cqe);
            int i = (int)(d >> 1);
            if (d & 1)
                continue; /* a send completed */
            if (cqe->res <= 0)
                continue;
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_send(sqe, fds[i], resp, sizeof resp, 0);
            io_uring_sqe_set_data64(sqe, ((uint64_t)i << 1) | 1);
            sqe = io_uring_get_sqe(&ring);
            io_uring_prep_recv(sqe, fds[i], bufs[i], sizeof bufs[i], 0);
            io_uring_sqe_set_data64(sqe, (uint64_t)i << 1);
            served++;
        }
        io_uring_cq_advance(&ring, seen);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s epoll|uring|uring-dt SECONDS\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int secs = atoi(argv[2]);
    memset(req, 'q', sizeof req);
    memset(resp, 'r', sizeof resp);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    bind(l, (void *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(l, (void *)&a, &al);
    listen(l, 128);
    int pfd[2];
    pipe(pfd);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTERM, on_term);
        if (strcmp(mode, "epoll") == 0)
            serve_epoll(l);
        else if (strcmp(mode, "uring") == 0)
            serve_uring(l, 0);
        else
            serve_uring(l, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
        write(pfd[1], &served, sizeof served);
        _exit(0);
    }
    int c[CONNS], ep = epoll_create1(0);
    for (int i = 0; i < CONNS; i++) {
        c[i] = socket(AF_INET, SOCK_STREAM, 0);
        connect(c[i], (void *)&a, sizeof a);
        int one = 1;
        setsockopt(c[i], IPPROTO_TCP, TCP_NODELAY, &one, 4);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i], &ev);
    }
    usleep(200000);
    char stat[64];
    snprintf(stat, sizeof stat, "/proc/%d/stat", (int)pid);
    long t0 = 0;
    {
        FILE *s = fopen(stat, "r");
        unsigned long u, k;
        fscanf(s, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &u, &k);
        fclose(s);
        t0 = (long)(u + k);
    }
    long sent = 0, got = 0;
    for (int i = 0; i < CONNS; i++)
        send(c[i], req, sizeof req, 0), sent++;
    char buf[65536];
    size_t have[CONNS] = {0};
    time_t end = time(NULL) + secs;
    struct epoll_event evs[64];
    while (time(NULL) < end) {
        int n = epoll_wait(ep, evs, 64, 100);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            ssize_t r = recv(c[i], buf, sizeof buf, 0);
            if (r <= 0)
                continue;
            have[i] += (size_t)r;
            while (have[i] >= sizeof resp) {
                have[i] -= sizeof resp;
                got++;
                send(c[i], req, sizeof req, 0);
            }
        }
    }
    long t1;
    {
        FILE *s = fopen(stat, "r");
        unsigned long u, k;
        fscanf(s, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &u, &k);
        fclose(s);
        t1 = (long)(u + k);
    }
    kill(pid, SIGTERM);
    long srv = 0;
    read(pfd[0], &srv, sizeof srv);
    waitpid(pid, NULL, 0);
    printf("%-7s %ld requests, server CPU %.2f us per request\n", mode, got,
           (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK) * 1e6 / (double)got);
    return 0;
}
