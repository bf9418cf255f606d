/*
 * echo_server.c - a TCP echo server with one weft thread per connection.
 *
 *   echo_server PORT [HOST]
 *
 * Listens on HOST:PORT (HOST default: every address, IPv4 and IPv6; PORT 0:
 * the kernel picks one) and prints "listening on port N" once ready. Each
 * connection gets its own weft thread running plain blocking-style code:
 * read what arrived, write it all back, until the client closes. The
 * threads park in weft_read instead of blocking a kernel thread, so ten
 * thousand idle connections cost ten thousand small stacks, not ten
 * thousand kernel threads. Runs until killed. WEFT_WORKERS sets how many
 * kernel threads run the connections (default: one per CPU).
 */
#include <weft.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0)
            break; /* 0: the client closed; < 0: a reset or another error */
        for (ssize_t off = 0; off < n;) {
            ssize_t w = weft_write(fd, buf + off, (size_t)(n - off), WEFT_FOREVER);
            if (w < 0)
                goto done;
            off += w;
        }
    }
done:
    weft_close(fd);
    return NULL;
}

static void *accept_loop(void *arg)
{
    int l = (int)(intptr_t)arg;
    for (;;) {
        int fd = weft_accept(l, NULL, NULL, SOCK_CLOEXEC, WEFT_FOREVER);
        if (fd < 0) {
            /* Out of fds or memory: wait a little for connections to end. */
            fprintf(stderr, "echo_server: accept: %s\n", strerror(-fd));
            weft_sleep(weft_after(WEFT_MS(10)));
            continue;
        }
        int one = 1; /* answers go out at once, not held back by Nagle */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int r = weft_spawn(NULL, serve, (void *)(intptr_t)fd, NULL); /* detached */
        if (r < 0) {
            fprintf(stderr, "echo_server: spawn: %s\n", strerror(-r));
            weft_close(fd);
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_server PORT [HOST]\n"
                    "  Echoes every byte back, one weft thread per connection.\n"
                    "  PORT 0 lets the kernel pick; the port is printed once listening.\n"
                    "  HOST defaults to every address (IPv4 and IPv6).\n"
                    "  Environment: WEFT_WORKERS=n kernel threads (default: one per CPU).\n");
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
    int l = weft_tcp_listen(host, (int)port, 4096);
    if (l < 0) {
        fprintf(stderr, "echo_server: listen on %s:%ld: %s\n", host ? host : "*", port,
                strerror(-l));
        return 1;
    }
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    int actual = ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
                                              : ((struct sockaddr_in6 *)&a)->sin6_port);
    printf("listening on port %d\n", actual);
    fflush(stdout);
    weft_t t;
    int r = weft_spawn(&t, accept_loop, (void *)(intptr_t)l, NULL);
    if (r < 0) {
        fprintf(stderr, "echo_server: spawn: %s\n", strerror(-r));
        return 1;
    }
    weft_join(t, NULL, WEFT_FOREVER); /* never returns */
    return 0;
}
