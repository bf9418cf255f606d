/*
 * t_io_errors: bad fds and bad arguments give a clear negative errno at
 * once, never a hang, whatever the deadline.
 *
 *   bad fds      -1, INT_MIN, INT_MAX, a number past the fd table, a
 *                number never opened and one just weft_close'd: every
 *                wrapper and weft_close give -EBADF, even with WEFT_FOREVER
 *   bad args     fdwait with no events or unknown bits, accept with flags
 *                other than SOCK_CLOEXEC/SOCK_NONBLOCK, readv/writev with a
 *                negative or too large iovec count, connect with a bad
 *                address length, tcp_listen with a bad port or a negative
 *                backlog, tcp_connect to port 0 or past 65535 or with a
 *                host name longer than DNS allows: -EINVAL
 *   wrong kind   recv on a pipe: -ENOTSOCK; accept on a socket that does
 *                not listen: -EINVAL; read on a listening socket:
 *                -ENOTCONN; connect on a pipe: -ENOTSOCK
 *   files        a regular file is always ready: read and write complete
 *                at once with any deadline, fdwait reports it ready
 *   names        a host name that does not resolve: -ENOENT (or, where
 *                DNS is unreachable, -EAGAIN or -ETIMEDOUT), never a hang
 */
#include "iotest.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>

static void bad_fds(void)
{
    /* The just-closed number is a high one: the lowest free number may be
     * taken again at any moment by another thread's open (getaddrinfo on a
     * lookup thread, a spare kernel thread's /proc file), which is not an
     * error of weft's. Waiting on it first leaves it known to the poller. */
    int sv[2];
    io_unix_pair(sv);
    int closed = fcntl(sv[1], F_DUPFD_CLOEXEC, 700);
    if (closed < 0)
        closed = fcntl(sv[1], F_DUPFD_CLOEXEC, 0); /* a limit under 701 */
    CHECK(closed >= 0);
    CHECK_EQ(close(sv[1]), 0);
    CHECK_ERR(weft_fdwait(closed, WEFT_IN, 0), -ETIMEDOUT);
    CHECK_ERR(weft_close(closed), 0);
    int fds[] = {-1, INT_MIN, INT_MAX, 1 << 24, 987654, closed};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        int fd = fds[i];
        char buf[8];
        struct iovec iov = {buf, sizeof buf};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        struct sockaddr_in a = {.sin_family = AF_INET};
        int64_t ds[] = {0, WEFT_FOREVER};
        for (int j = 0; j < 2; j++) {
            int64_t d = ds[j];
            CHECK_ERR(weft_read(fd, buf, sizeof buf, d), -EBADF);
            CHECK_ERR(weft_write(fd, buf, sizeof buf, d), -EBADF);
            CHECK_ERR(weft_readv(fd, &iov, 1, d), -EBADF);
            CHECK_ERR(weft_writev(fd, &iov, 1, d), -EBADF);
            CHECK_ERR(weft_recv(fd, buf, sizeof buf, 0, d), -EBADF);
            CHECK_ERR(weft_send(fd, buf, sizeof buf, 0, d), -EBADF);
            CHECK_ERR(weft_recvfrom(fd, buf, sizeof buf, 0, NULL, NULL, d), -EBADF);
            CHECK_ERR(weft_sendto(fd, buf, sizeof buf, 0, NULL, 0, d), -EBADF);
            CHECK_ERR(weft_recvmsg(fd, &mh, 0, d), -EBADF);
            CHECK_ERR(weft_sendmsg(fd, &mh, 0, d), -EBADF);
            CHECK_ERR(weft_accept(fd, NULL, NULL, 0, d), -EBADF);
            CHECK_ERR(weft_connect(fd, (struct sockaddr *)&a, sizeof a, d), -EBADF);
            CHECK_ERR(weft_fdwait(fd, WEFT_IN, d), -EBADF);
            CHECK_ERR(weft_fdwait(fd, WEFT_OUT, d), -EBADF);
        }
        CHECK_ERR(weft_close(fd), -EBADF);
    }
    CHECK_ERR(weft_close(sv[0]), 0);
}

static void bad_args(void)
{
    int sv[2];
    io_unix_pair(sv);
    CHECK_ERR(weft_fdwait(sv[0], 0, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_fdwait(sv[0], WEFT_IN | 2, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_fdwait(sv[0], 0x40, 0), -EINVAL);
    CHECK_ERR(weft_fdwait(-1, 0, 0), -EINVAL); /* arguments first */

    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    CHECK_ERR(weft_readv(sv[0], &iov, -1, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_writev(sv[0], &iov, -1, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_readv(sv[0], &iov, IOV_MAX + 1, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_writev(sv[0], &iov, IOV_MAX + 1, WEFT_FOREVER), -EINVAL);

    struct sockaddr_in a;
    socklen_t al;
    int l = io_tcp_listener(&a, &al, 4);
    CHECK_ERR(weft_accept(l, NULL, NULL, 0x1, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_accept(l, NULL, NULL, SOCK_CLOEXEC | 0x4000000, 0), -EINVAL);

    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    CHECK_ERR(weft_connect(c, (struct sockaddr *)&a, 3, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_close(c), 0);

    CHECK_ERR(weft_tcp_listen("127.0.0.1", -1, 4), -EINVAL);
    CHECK_ERR(weft_tcp_listen("127.0.0.1", 65536, 4), -EINVAL);
    CHECK_ERR(weft_tcp_listen("127.0.0.1", 0, -1), -EINVAL);
    CHECK_ERR(weft_tcp_connect("127.0.0.1", 0, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_tcp_connect("127.0.0.1", -5, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_tcp_connect("127.0.0.1", 70000, WEFT_FOREVER), -EINVAL);
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK_ERR(weft_tcp_connect(longname, 80, WEFT_FOREVER), -EINVAL);
    CHECK_ERR(weft_tcp_listen(longname, 0, 4), -EINVAL);

    CHECK_ERR(weft_close(l), 0);
    CHECK_ERR(weft_close(sv[0]), 0);
    CHECK_ERR(weft_close(sv[1]), 0);
}

static void wrong_kind(void)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    char buf[8];
    CHECK_ERR(weft_recv(p[0], buf, sizeof buf, 0, WEFT_FOREVER), -ENOTSOCK);
    CHECK_ERR(weft_send(p[1], buf, sizeof buf, 0, WEFT_FOREVER), -ENOTSOCK);
    CHECK_ERR(weft_accept(p[0], NULL, NULL, 0, WEFT_FOREVER), -ENOTSOCK);
    struct sockaddr_in a = {.sin_family = AF_INET};
    CHECK_ERR(weft_connect(p[0], (struct sockaddr *)&a, sizeof a, WEFT_FOREVER), -ENOTSOCK);
    /* Reading the write end of a pipe. */
    CHECK_ERR(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), -EBADF);
    CHECK_ERR(weft_close(p[0]), 0);
    CHECK_ERR(weft_close(p[1]), 0);

    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    CHECK_ERR(weft_accept(s, NULL, NULL, 0, WEFT_FOREVER), -EINVAL); /* not listening */
    CHECK_ERR(weft_read(s, buf, sizeof buf, WEFT_FOREVER), -ENOTCONN);
    CHECK_ERR(weft_close(s), 0);
    struct sockaddr_in la;
    socklen_t ll;
    int l = io_tcp_listener(&la, &ll, 4);
    CHECK_ERR(weft_read(l, buf, sizeof buf, WEFT_FOREVER), -ENOTCONN);
    CHECK_ERR(weft_close(l), 0);
}

static void files(void)
{
    char path[] = "/tmp/t_io_errors.XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    CHECK(fd >= 0);
    unlink(path);
    CHECK_EQ(weft_write(fd, "file", 4, 0), 4);
    CHECK_EQ(weft_write(fd, "data", 4, WEFT_FOREVER), 4);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    char buf[16];
    CHECK_EQ(weft_read(fd, buf, sizeof buf, 0), 8);
    CHECK(memcmp(buf, "filedata", 8) == 0);
    CHECK_EQ(weft_read(fd, buf, sizeof buf, WEFT_FOREVER), 0); /* end of file */
    CHECK_ERR(weft_fdwait(fd, WEFT_IN | WEFT_OUT, WEFT_FOREVER), WEFT_IN | WEFT_OUT);
    CHECK_ERR(weft_close(fd), 0);
}

static void names(void)
{
    int r = weft_tcp_connect("no-such-host.invalid", 80, weft_after(WEFT_SEC(20)));
    if (r != -ENOENT && r != -EAGAIN && r != -ETIMEDOUT)
        check_failed("tcp_connect to an unknown host returned %d (%s)\n", r, check_errname(r));
    printf("names: an unknown host gives %s\n", check_errname(r));
}

static void all(const char *where)
{
    bad_fds();
    bad_args();
    wrong_kind();
    files();
    printf("bad fds, bad args, wrong kind, files (%s): ok\n", where);
}

static void all_weft(void)
{
    all("weft thread");
    names();
}

int main(void)
{
    all("main, before the runtime starts");
    io_in_weft(all_weft);
    all("main");
    return 0;
}
