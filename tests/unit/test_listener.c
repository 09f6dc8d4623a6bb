/* test_listener.c - sockets inherited by the LISTEN_FDS protocol. */
#include "unit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"

static void set_env(const char *pid, const char *fds, const char *names)
{
    char own[32];
    if (!pid) {
        snprintf(own, sizeof own, "%d", (int)getpid());
        pid = own;
    }
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", fds, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
}

static void assert_env_cleared(void)
{
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
    assert_null(getenv("PORTICO_READY_FD"));
}

/* fd moved above the low numbers the tests hand over (3..6). */
static int high(int fd)
{
    int h = fcntl(fd, F_DUPFD, 20);
    assert_true(h >= 20);
    close(fd);
    return h;
}

static void move_to(int fd, int to)
{
    assert_int_equal(dup2(fd, to), to);
    close(fd);
}

/* A listening TCP socket on 127.0.0.1, at a high fd; sets its port. */
static int tcp_listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 8), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return high(s);
}

static void test_inherit_other_pid_ignored_and_env_cleared(void **state)
{
    set_env("1", "1", "web");
    setenv("PORTICO_READY_FD", "9", 1);
    struct listener **ls;
    assert_int_equal(listener_inherit(&ls), 0);
    assert_null(ls);
    assert_env_cleared();
    assert_int_equal(listener_ready_fd(), -1);
}

static void test_inherit_bad_count_refused(void **state)
{
    const char *bad[] = {"", "x", "-1", "2x", "99999999999999999999", "1025"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_env(NULL, bad[i], NULL);
        struct listener **ls;
        assert_int_equal(listener_inherit(&ls), 0);
        assert_null(ls);
        assert_env_cleared();
    }
}

static void test_inherit_sockets_by_address_and_name(void **state)
{
    int port;
    int tcp = tcp_listener(&port);
    int p[2];
    assert_int_equal(pipe(p), 0);
    p[0] = high(p[0]);
    p[1] = high(p[1]);
    int un = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un ua = {.sun_family = AF_UNIX};
    snprintf(ua.sun_path, sizeof ua.sun_path, "/tmp/portico-unit-%d.sock", (int)getpid());
    unlink(ua.sun_path);
    assert_int_equal(bind(un, (struct sockaddr *)&ua, sizeof ua), 0);
    assert_int_equal(listen(un, 8), 0);
    un = high(un);
    move_to(tcp, 3);
    move_to(p[0], 4); /* not a socket: closed */
    move_to(un, 5);
    move_to(p[1], 6); /* the ready pipe */

    set_env(NULL, "3", "web:junk:sock");
    setenv("PORTICO_READY_FD", "6", 1);
    struct listener **ls;
    assert_int_equal(listener_inherit(&ls), 2);
    assert_env_cleared();

    char want[sizeof ua.sun_path + 8];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_int_equal(ls[0]->fd, 3);
    assert_string_equal(ls[0]->bound.text, want);
    assert_string_equal(ls[0]->owner, "web");
    assert_true(ls[0]->keep_path);
    assert_int_equal(((struct sockaddr_in *)&ls[0]->addr.sa)->sin_port, 0);
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(3, F_GETFL) & O_NONBLOCK);
    assert_int_equal(fcntl(4, F_GETFD), -1); /* the pipe was closed */

    /* A configured address finds it: exactly, or as port 0 for its name. */
    struct config_addr a = ls[0]->bound;
    assert_true(listener_bound_to(ls[0], &a));
    ((struct sockaddr_in *)&a.sa)->sin_port = 0;
    assert_true(listener_any_port_for(ls[0], &a, "web"));
    assert_false(listener_any_port_for(ls[0], &a, "metrics"));

    snprintf(want, sizeof want, "unix:%s", ua.sun_path);
    assert_string_equal(ls[1]->bound.text, want);
    assert_string_equal(ls[1]->owner, "sock");
    assert_int_equal(listener_ready_fd(), 6);
    assert_true(fcntl(6, F_GETFD) & FD_CLOEXEC);

    /* Closing an inherited Unix socket leaves its file to its creator. */
    listener_unref(ls[0]);
    listener_unref(ls[1]);
    free(ls);
    assert_int_equal(access(ua.sun_path, F_OK), 0);
    unlink(ua.sun_path);
    close(6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inherit_other_pid_ignored_and_env_cleared),
        cmocka_unit_test(test_inherit_bad_count_refused),
        cmocka_unit_test(test_inherit_sockets_by_address_and_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
