/*
 * graceful_server.c - the echo server (echo_server.c), shut down nicely on
 * SIGINT or SIGTERM with one group stop.
 *
 *   graceful_server PORT [HOST]
 *
 * Listens on HOST:PORT (PORT 0: the kernel picks; the port is logged) and
 * echoes every connection on its own weft thread, as echo_server does.
 * The accept loop and every connection thread are in one group (the
 * connection threads join it because the accept loop, their spawner, is in
 * it). When SIGINT or SIGTERM arrives:
 *
 *   1. a watcher thread, outside the group, reads the signal from a
 *      signalfd with weft_read, and stops the group with WEFT_STOP_FILES;
 *   2. every connection thread's weft_read or weft_write returns
 *      -ECANCELED (also one that was blocked in it), so its loop ends; it
 *      logs a goodbye line through the log fd, which is exempt from stops
 *      (weft_fd_exempt) and so still works, and closes its socket (a close
 *      always works); the client sees the end of the stream;
 *   3. the accept loop's weft_accept returns -ECANCELED: it closes the
 *      listener, so new connections are refused;
 *   4. main, in weft_group_wait, returns once all of them have ended, logs
 *      a last line and exits with status 0.
 *
 * Signals. weft's worker kernel threads block asynchronous signals, so a
 * handler would run on main, which here waits inside weft. Instead main
 * blocks SIGINT and SIGTERM before the runtime starts (the workers, made
 * later, inherit the mask), and the signals wait, pending, in a signalfd
 * that a weft thread reads like any other fd.
 *
 * Log lines (stdout), one write each:
 *   listening on port N
 *   conn N: open
 *   signal NAME: stopping
 *   conn N: stopped after B bytes, goodbye      (or: closed by the client)
 *   accept: stopped, listener closed
 *   all N connections closed, exiting
 */
#include <weft.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int log_fd = -1;
static weft_group_t *conns;
static int opened, closed_; /* atomic: connections accepted, ended */

/* One line to the log, in one write. From any thread; never cut short by
 * a stop, since the log fd is exempt. */
static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = weft_write(log_fd, line + off, (size_t)(n - off), WEFT_FOREVER);
        if (w < 0)
            return;
        off += (int)w;
    }
}

struct conn {
    int fd;
    int id;
};

static void *serve(void *arg)
{
    struct conn c = *(struct conn *)arg;
    free(arg);
    char buf[16384];
    long echoed = 0;
    ssize_t n;
    for (;;) {
        n = weft_read(c.fd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0)
            break; /* 0: the client closed; -ECANCELED: stopped; or an error */
        for (ssize_t off = 0; off < n;) {
            ssize_t w = weft_write(c.fd, buf + off, (size_t)(n - off), WEFT_FOREVER);
            if (w < 0) {
                n = w;
                goto done;
            }
            off += w;
        }
        echoed += n;
    }
done:
    if (n == -ECANCELED)
        logf_("conn %d: stopped after %ld bytes, goodbye", c.id, echoed);
    else if (n == 0)
        logf_("conn %d: closed by the client after %ld bytes", c.id, echoed);
    else
        logf_("conn %d: %s after %ld bytes", c.id, strerror((int)-n), echoed);
    weft_close(c.fd); /* works under WEFT_STOP_FILES too */
    __atomic_fetch_add(&closed_, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *accept_loop(void *arg)
{
    int l = (int)(intptr_t)arg;
    for (;;) {
        int fd = weft_accept(l, NULL, NULL, SOCK_CLOEXEC, WEFT_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0) {
            logf_("accept: %s", strerror(-fd));
            if (weft_sleep(weft_after(WEFT_MS(10))) == -ECANCELED)
                break;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        int id = __atomic_add_fetch(&opened, 1, __ATOMIC_RELAXED);
        int r = c ? 0 : -ENOMEM;
        if (c) {
            *c = (struct conn){fd, id};
            /* No attr: the thread joins this thread's group, conns. */
            r = weft_spawn(NULL, serve, c, NULL);
        }
        if (r < 0) {
            logf_("conn %d: spawn: %s", id, strerror(-r));
            free(c);
            weft_close(fd);
            __atomic_fetch_add(&closed_, 1, __ATOMIC_RELAXED);
            continue;
        }
        logf_("conn %d: open", id);
    }
    weft_close(l);
    logf_("accept: stopped, listener closed");
    return NULL;
}

/* Outside the group: waits for SIGINT or SIGTERM, then stops the group. */
static void *watch_signals(void *arg)
{
    int sfd = (int)(intptr_t)arg;
    struct signalfd_siginfo si;
    ssize_t n = weft_read(sfd, &si, sizeof si, WEFT_FOREVER);
    if (n != (ssize_t)sizeof si) {
        logf_("signalfd: %s", n < 0 ? strerror((int)-n) : "short read");
        return NULL;
    }
    logf_("signal %s: stopping", sigabbrev_np((int)si.ssi_signo));
    weft_group_stop(conns, WEFT_STOP_FILES);
    weft_close(sfd);
    return NULL;
}

/* The log: stdout, opened anew where it can be, so that the O_NONBLOCK
 * the fd wrappers set stays on our own open file and not on the one the
 * shell or a parent shares. Marked exempt from stops. */
static int open_log(void)
{
    int fd = open("/proc/self/fd/1", O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3); /* a socket: share it */
    if (fd < 0)
        return -1;
    int r = weft_fd_exempt(fd, 1);
    if (r < 0) {
        fprintf(stderr, "graceful_server: weft_fd_exempt: %s\n", strerror(-r));
        return -1;
    }
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: graceful_server PORT [HOST]\n"
                    "  An echo server, one weft thread per connection, that ends every\n"
                    "  connection nicely on SIGINT or SIGTERM, then exits.\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        usage();
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || end == argv[1] || port < 0 || port > 65535)
        usage();
    const char *host = argc == 3 ? argv[2] : NULL;

    /* Before any weft call that could start the runtime. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        perror("graceful_server: sigprocmask");
        return 1;
    }
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        perror("graceful_server: signalfd");
        return 1;
    }
    if ((log_fd = open_log()) < 0) {
        perror("graceful_server: log");
        return 1;
    }

    int l = weft_tcp_listen(host, (int)port, 4096);
    if (l < 0) {
        fprintf(stderr, "graceful_server: listen on %s:%ld: %s\n", host ? host : "*", port,
                strerror(-l));
        return 1;
    }
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    int actual = ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
                                              : ((struct sockaddr_in6 *)&a)->sin6_port);

    int r = weft_group_new(&conns, NULL); /* main is in no group: a top-level one */
    weft_attr in_conns = {.name = "accept", .group = conns};
    weft_t watcher;
    if (r == 0)
        r = weft_spawn(NULL, accept_loop, (void *)(intptr_t)l, &in_conns);
    if (r == 0)
        r = weft_spawn(&watcher, watch_signals, (void *)(intptr_t)sfd, NULL);
    if (r < 0) {
        fprintf(stderr, "graceful_server: start: %s\n", strerror(-r));
        return 1;
    }
    logf_("listening on port %d", actual);

    /* Untimed, so it keeps working whatever happens: returns once the
     * stop has ended every thread of the group. */
    weft_group_wait(conns, WEFT_FOREVER);
    weft_join(watcher, NULL, WEFT_FOREVER);
    weft_group_free(conns);
    logf_("all %d connections closed, exiting", __atomic_load_n(&closed_, __ATOMIC_RELAXED));
    return 0;
}
