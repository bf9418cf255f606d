/*
 * tcp.c - weft_tcp_listen and weft_tcp_connect: name lookup, socket,
 * bind/listen or connect.
 *
 * getaddrinfo blocks its kernel thread for as long as DNS takes, so it
 * must not run on a worker. Numeric addresses are parsed in place (no
 * lookup); a name is handed to a kernel thread made for the purpose (a
 * plain pthread, until the blocking pool exists), and the caller waits on
 * a struct wait (sync.h) that the lookup thread ends when it is done.
 *
 * The request is shared by the caller and the lookup thread, which may
 * outlive the caller's deadline, so it is on the heap with two references;
 * the last one out frees it. The caller's wait is reachable only through
 * req->w under req->lock: a caller that gives up (deadline or stop) clears
 * it under the lock after its wait is over, and the lookup thread claims
 * and releases the wait only if it is still there, per sync.h's protocol.
 *
 * Stops: a lookup is a wait a stop ends (the lookup thread finishes on its
 * own and frees the request); both calls make fds, so WEFT_STOP_FILES
 * fails them at once; the connect's wait is weft_connect's.
 */
#include "io/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct lookup {
    struct ilock lock;
    struct wait *w;        /* lock: the caller's wait, NULL once it left */
    uint32_t refs;         /* atomic: caller and lookup thread */
    char host[256];
    char port[16];
    bool passive;
    int err;               /* written by the lookup thread before the claim */
    struct addrinfo *res;  /* likewise */
};

static void lookup_put(struct lookup *q)
{
    if (__atomic_sub_fetch(&q->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        if (q->res)
            freeaddrinfo(q->res);
        free(q);
    }
}

static int gai_errno(int e)
{
    switch (e) {
    case 0:
        return 0;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_SYSTEM:
        return -errno;
    default:
        return -ENOENT;
    }
}

static void *lookup_main(void *arg)
{
    struct lookup *q = arg;
    prctl(PR_SET_NAME, "weft-lookup", 0, 0, 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG | (q->passive ? AI_PASSIVE : 0)};
    q->err = gai_errno(getaddrinfo(q->host, q->port, &hints, &q->res));
    ilock(&q->lock);
    struct wait *w = q->w;
    bool won = w && weft__wait_claim(w, WAIT_WOKEN);
    if (won)
        q->w = NULL;
    iunlock(&q->lock);
    if (won)
        weft__wait_release(w); /* last touch of w */
    lookup_put(q);
    return NULL;
}

/* A host name looked up off the workers; *res must be freed with
 * lookup_put(*q) once used. */
static int lookup(const char *host, const char *port, bool passive, int64_t deadline,
                  struct lookup **qp)
{
    if (strlen(host) >= sizeof((struct lookup *)0)->host)
        return -EINVAL;
    if (weft__stop_self() & ST_STOP)
        return -ECANCELED; /* it would wait */
    struct lookup *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    strcpy(q->host, host);
    strcpy(q->port, port);
    q->passive = passive;
    q->refs = 2;
    struct wait w;
    weft__wait_prepare(&w);
    q->w = &w;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &a, lookup_main, q);
    pthread_attr_destroy(&a);
    if (e) {
        weft__wait_abandon(&w);
        free(q);
        return -e;
    }
    uint32_t how = weft__wait_block(&w, deadline, true);
    if (how != WAIT_WOKEN) {
        ilock(&q->lock);
        q->w = NULL; /* the lookup thread's claim failed: it leaves w alone */
        iunlock(&q->lock);
        lookup_put(q);
        return how == WAIT_STOPPED ? -ECANCELED : -ETIMEDOUT;
    }
    if (q->err) {
        int r = q->err;
        lookup_put(q);
        return r;
    }
    *qp = q;
    return 0;
}

/* The addresses of host:port: one numeric address in *one, or a looked-up
 * list in (*q)->res. */
static int resolve(const char *host, int port, bool passive, int64_t deadline,
                   struct sockaddr_storage *one, socklen_t *onelen, struct lookup **q)
{
    if (port < 0 || port > 65535)
        return -EINVAL;
    *q = NULL;
    memset(one, 0, sizeof *one);
    struct sockaddr_in *a4 = (struct sockaddr_in *)one;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)one;
    if (!host || !*host) {
        if (!passive)
            host = "127.0.0.1";
        else {
            a6->sin6_family = AF_INET6; /* dual-stack: IPv4 too */
            a6->sin6_addr = in6addr_any;
            a6->sin6_port = htons((uint16_t)port);
            *onelen = sizeof *a6;
            return 0;
        }
    }
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *onelen = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *onelen = sizeof *a6;
        return 0;
    }
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    return lookup(host, p, passive, deadline, q);
}

static int tcp_socket(int family)
{
    int s = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -weft__errno_get();
    weft__fd_fresh(s, true);
    return s;
}

static int listen_on(const struct sockaddr *a, socklen_t len, int backlog)
{
    int s = tcp_socket(a->sa_family);
    if (s < 0)
        return s;
    int one = 1, zero = 0;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->sa_family == AF_INET6)
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(s, a, len) < 0 || listen(s, backlog) < 0) {
        int e = -weft__errno_get();
        weft_close(s);
        return e;
    }
    return s;
}

int weft_tcp_listen(const char *host, int port, int backlog)
{
    if (backlog < 0)
        return -EINVAL;
    if (weft__stop_self() & ST_FILES)
        return -ECANCELED;
    struct sockaddr_storage one;
    socklen_t len;
    struct lookup *q;
    int r = resolve(host, port, true, WEFT_FOREVER, &one, &len, &q);
    if (r < 0)
        return r;
    if (!q) {
        r = listen_on((struct sockaddr *)&one, len, backlog);
        if (r == -EAFNOSUPPORT && (!host || !*host)) { /* no IPv6: IPv4 only */
            struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
            r = listen_on((struct sockaddr *)&a4, sizeof a4, backlog);
        }
        return r;
    }
    r = -ENOENT;
    for (struct addrinfo *ai = q->res; ai; ai = ai->ai_next)
        if ((r = listen_on(ai->ai_addr, ai->ai_addrlen, backlog)) >= 0)
            break;
    lookup_put(q);
    return r;
}

static int connect_to(const struct sockaddr *a, socklen_t len, int64_t deadline)
{
    int s = tcp_socket(a->sa_family);
    if (s < 0)
        return s;
    int r = weft_connect(s, a, len, deadline);
    if (r < 0) {
        weft_close(s);
        return r;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

int weft_tcp_connect(const char *host, int port, int64_t deadline)
{
    if (port == 0)
        return -EINVAL; /* nobody listens on port 0 */
    if (weft__stop_self() & ST_FILES)
        return -ECANCELED;
    struct sockaddr_storage one;
    socklen_t len;
    struct lookup *q;
    int r = resolve(host, port, false, deadline, &one, &len, &q);
    if (r < 0)
        return r;
    if (!q)
        return connect_to((struct sockaddr *)&one, len, deadline);
    r = -ENOENT;
    for (struct addrinfo *ai = q->res; ai; ai = ai->ai_next) {
        if ((r = connect_to(ai->ai_addr, ai->ai_addrlen, deadline)) >= 0 || r == -ETIMEDOUT ||
            r == -ECANCELED)
            break;
    }
    lookup_put(q);
    return r;
}
