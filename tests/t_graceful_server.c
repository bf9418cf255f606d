/*
 * t_graceful_server: examples/graceful_server, driven with real
 * connections. The example is built beside the tests, in
 * build/<config>/examples/, and run as a child process whose log (stdout)
 * comes back through a pipe.
 *
 *   signal      with CONNS clients connected and echoing (one of them
 *               blocked in the server's write, its socket full), SIGTERM,
 *               then in a second run SIGINT: every client sees the end of
 *               its stream, the log has one goodbye per connection, the
 *               accept loop's stop and the last line, the listener
 *               refuses new connections and the server exits with 0
 *   idle        a server with no connection stops and exits just as well
 */
#include "iotest.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>

#define CONNS 20
#define FAR (weft_after(WEFT_SEC(60)))

extern char **environ;

static char server_path[PATH_MAX];

struct server {
    pid_t pid;
    int out;          /* its stdout */
    int port;
    char log[65536];  /* everything it printed so far */
    size_t len;
};

/* Reads the log until it holds want (or the server's stdout ends). */
static bool log_until(struct server *s, const char *want)
{
    while (!memmem(s->log, s->len, want, strlen(want))) {
        if (s->len >= sizeof s->log - 1)
            check_failed("graceful_server log overflow:\n%.*s\n", (int)s->len, s->log);
        ssize_t n = weft_read(s->out, s->log + s->len, sizeof s->log - 1 - s->len, FAR);
        if (n == 0)
            return false;
        if (n < 0)
            check_failed("reading the server's log: %s\n", check_errname(n));
        s->len += (size_t)n;
        s->log[s->len] = 0;
    }
    return true;
}

static int count_of(const struct server *s, const char *what)
{
    int n = 0;
    for (const char *p = s->log; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

static void start(struct server *s)
{
    memset(s, 0, sizeof *s);
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    char *argv[] = {server_path, "0", "127.0.0.1", NULL};
    int e = posix_spawn(&s->pid, server_path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e)
        check_failed("posix_spawn %s: %s\n", server_path, strerror(e));
    close(p[1]);
    s->out = p[0];
    if (!log_until(s, "listening on port "))
        check_failed("the server ended before listening:\n%s\n", s->log);
    CHECK(log_until(s, "\n"));
    const char *at = strstr(s->log, "listening on port ");
    s->port = atoi(at + strlen("listening on port "));
    CHECK(s->port > 0);
}

static void finish(struct server *s, int nconns)
{
    /* The log ends when the server exits. */
    char last[96];
    snprintf(last, sizeof last, "all %d connections closed, exiting\n", nconns);
    if (!log_until(s, last))
        check_failed("no last line (\"%s\") in the log:\n%s\n", last, s->log);
    CHECK(!log_until(s, "never printed"));
    CHECK(log_until(s, "accept: stopped, listener closed"));
    CHECK_EQ(count_of(s, "goodbye"), nconns);
    CHECK_EQ(count_of(s, ": open"), nconns);
    int status;
    CHECK_EQ(waitpid(s->pid, &status, 0), s->pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        check_failed("the server ended with status %#x; its log:\n%s\n", status, s->log);
    CHECK_ERR(weft_close(s->out), 0);
    /* Nobody listens any more. */
    CHECK_ERR(weft_tcp_connect("127.0.0.1", s->port, FAR), -ECONNREFUSED);
}

static void signal_run(int sig)
{
    struct server s;
    start(&s);
    int c[CONNS];
    char buf[256];
    for (int i = 0; i < CONNS; i++) {
        c[i] = weft_tcp_connect("127.0.0.1", s.port, FAR);
        CHECK(c[i] >= 0);
        int n = snprintf(buf, sizeof buf, "hello %d\n", i);
        CHECK_EQ(weft_write(c[i], buf, (size_t)n, FAR), n);
        char back[256];
        ssize_t got = 0;
        while (got < n) {
            ssize_t r = weft_read(c[i], back + got, sizeof back - (size_t)got, FAR);
            CHECK(r > 0);
            got += r;
        }
        CHECK(memcmp(back, buf, (size_t)n) == 0);
    }
    /* The last client stops reading and keeps writing: the server's
     * thread for it ends up blocked in weft_write. */
    io_fill(c[CONNS - 1]);
    char open_line[32];
    snprintf(open_line, sizeof open_line, "conn %d: open", CONNS);
    CHECK(log_until(&s, open_line));
    weft_sleep(weft_after(WEFT_MS(50)));
    CHECK_EQ(count_of(&s, "goodbye"), 0);

    CHECK_EQ(kill(s.pid, sig), 0);
    for (int i = 0; i < CONNS; i++) {
        /* The server closed it: EOF after whatever echo was in flight
         * (the filled one may see a reset, having unread data there). */
        for (;;) {
            ssize_t r = weft_read(c[i], buf, sizeof buf, FAR);
            if (r > 0)
                continue;
            CHECK_ERR2(r, 0, -ECONNRESET);
            break;
        }
        CHECK_ERR(weft_close(c[i]), 0);
    }
    finish(&s, CONNS);
    printf("signal %s: %d connections said goodbye, the server exited with 0\n",
           sigabbrev_np(sig), CONNS);
}

static void idle(void)
{
    struct server s;
    start(&s);
    CHECK_EQ(kill(s.pid, SIGINT), 0);
    finish(&s, 0);
    printf("idle: a server without connections stopped and exited\n");
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[PATH_MAX];
    CHECK(realpath(argv[0], self) != NULL);
    snprintf(server_path, sizeof server_path, "%s/../examples/graceful_server", dirname(self));
    if (access(server_path, X_OK) != 0)
        check_failed("%s: not built (make builds it beside the tests)\n", server_path);
    signal(SIGPIPE, SIG_IGN);
    signal_run(SIGTERM);
    signal_run(SIGINT);
    idle();
    return 0;
}
