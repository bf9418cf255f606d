/*
 * runner.c - runs test programs, each in its own forked child with a timeout.
 *
 *   build/runner -j JOBS -t TIMEOUT_SECONDS
 *                [--label NAME] [--env VAR=VALUE]... PROG...
 *                [--label NAME2 [--env VAR=VALUE]... PROG...]...
 *
 * A --label starts a new group; the --env options that follow it set
 * environment variables (on top of the inherited environment) for the
 * programs of that group only. Up to JOBS programs run at once. Each runs in
 * a child that puts itself in a new process group and execs the program with
 * stdin from /dev/null and stdout+stderr going to an unlinked temporary
 * file. When a program runs past TIMEOUT_SECONDS (0: no limit) its whole
 * process group is killed with SIGKILL and it counts as failed.
 *
 * Output: one line per program, in the order they finish,
 *
 *   PASS label/name (1.23s)
 *   FAIL label/name (exit 3 | signal 6 | TIMEOUT) (1.23s)
 *
 * a failure followed by the last lines of what the program printed, indented;
 * then the list of failures and, last, one line "N passed, N failed". The
 * exit status is 0 when nothing failed, 1 otherwise, 2 for a usage error.
 *
 * WEFT_TEST_FILTER=SUBSTRING runs only the programs whose name (the file
 * name of PROG) contains SUBSTRING; when it contains a '/', it is matched
 * against "label/name" instead, so "asan/t_park" picks one run. Skipped
 * programs are not counted.
 *
 * How waiting works: SIGCHLD, SIGINT, SIGTERM and SIGHUP are blocked and
 * collected with sigtimedwait, whose timeout is the nearest deadline of a
 * running program. After every wake-up each running child is probed with
 * waitid(WNOWAIT): a child that has exited stays a zombie until its process
 * group has been killed too (so stray grandchildren cannot outlive their
 * test), and only then is it reaped; a zombie keeps its pid, so the group id
 * cannot have been reused by then. SIGINT/SIGTERM/SIGHUP kill every running
 * group before the runner exits.
 *
 * Only libc; the runner is single-threaded, so the child may call setenv
 * between fork and exec.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TAIL_LINES 40
#define TAIL_BYTES (64 * 1024)

struct group {
    const char *label; /* NULL: programs given before any --label */
    char **env;        /* "VAR=VALUE" strings, from argv */
    int nenv;
};

struct prog {
    const char *path; /* as given on the command line */
    const char *name; /* file name part of path */
    int group;        /* index into groups[] */
};

struct job {
    pid_t pid;       /* 0: the slot is free */
    int prog;        /* index into progs[] */
    int out_fd;      /* the child's stdout+stderr, an unlinked temp file */
    double start;    /* monotonic seconds */
    double deadline; /* monotonic seconds; 0: none */
};

static struct group *groups;
static int ngroups;
static struct prog *progs;
static int nprogs;
static struct job *jobs;
static int njobs = 1;
static double timeout_s;

static int passed, failed;
static char **failures; /* "label/name" of each failure, for the summary */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("runner: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void usage(void)
{
    fprintf(stderr, "usage: runner -j JOBS -t TIMEOUT_SECONDS [--label NAME] "
                    "[--env VAR=VALUE]... PROG... [--label NAME ...]...\n");
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long parse_num(const char *opt, const char *s)
{
    char *end;
    if (!s)
        usage();
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        die("%s wants a non-negative number, not '%s'", opt, s);
    return v;
}

static void new_group(const char *label)
{
    groups = xrealloc(groups, sizeof(*groups) * (size_t)(ngroups + 1));
    groups[ngroups] = (struct group){.label = label};
    ngroups++;
}

static void parse_args(int argc, char **argv)
{
    new_group(NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-j")) {
            njobs = (int)parse_num("-j", argv[++i]);
            if (njobs < 1)
                njobs = 1;
        } else if (!strcmp(a, "-t")) {
            timeout_s = (double)parse_num("-t", argv[++i]);
        } else if (!strcmp(a, "--label")) {
            if (!argv[i + 1])
                usage();
            new_group(argv[++i]);
        } else if (!strcmp(a, "--env")) {
            const char *e = argv[++i];
            if (!e || !strchr(e, '=') || e[0] == '=')
                die("--env wants VAR=VALUE");
            struct group *g = &groups[ngroups - 1];
            g->env = xrealloc(g->env, sizeof(char *) * (size_t)(g->nenv + 1));
            g->env[g->nenv++] = argv[i];
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
        } else if (a[0] == '-' && a[1]) {
            die("unknown option '%s'", a);
        } else {
            progs = xrealloc(progs, sizeof(*progs) * (size_t)(nprogs + 1));
            const char *slash = strrchr(a, '/');
            progs[nprogs] =
                (struct prog){.path = a, .name = slash ? slash + 1 : a, .group = ngroups - 1};
            nprogs++;
        }
    }
}

/* "label/name", or just "name" outside any group; static buffer. */
static const char *display(int p)
{
    static char buf[4096];
    const char *label = groups[progs[p].group].label;
    if (label)
        snprintf(buf, sizeof(buf), "%s/%s", label, progs[p].name);
    else
        snprintf(buf, sizeof(buf), "%s", progs[p].name);
    return buf;
}

static int selected(int p, const char *filter)
{
    if (!filter || !*filter)
        return 1;
    if (strchr(filter, '/'))
        return strstr(display(p), filter) != NULL;
    return strstr(progs[p].name, filter) != NULL;
}

static int make_output_file(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    char path[4096];
    snprintf(path, sizeof(path), "%s/weft-test-XXXXXX", dir);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        die("cannot create a temporary file in %s: %s", dir, strerror(errno));
    unlink(path);
    return fd;
}

/* In the child, between fork and exec. Never returns. */
static void exec_child(int p, int out_fd, const sigset_t *oldmask)
{
    setpgid(0, 0);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, oldmask, NULL);

    int in = open("/dev/null", O_RDONLY);
    if (in >= 0 && in != 0) {
        dup2(in, 0);
        close(in);
    }
    dup2(out_fd, 1);
    dup2(out_fd, 2);

    const struct group *g = &groups[progs[p].group];
    for (int i = 0; i < g->nenv; i++) {
        const char *e = g->env[i];
        size_t klen = (size_t)(strchr(e, '=') - e);
        char key[256];
        if (klen >= sizeof(key))
            klen = sizeof(key) - 1;
        memcpy(key, e, klen);
        key[klen] = 0;
        setenv(key, e + klen + 1, 1);
    }

    char *args[] = {(char *)progs[p].path, NULL};
    execv(progs[p].path, args);
    fprintf(stderr, "runner: cannot exec %s: %s\n", progs[p].path, strerror(errno));
    _exit(127);
}

static void start(struct job *j, int p, const sigset_t *oldmask)
{
    int fd = make_output_file();
    fflush(NULL); /* the child must not flush our buffers a second time */
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0)
        exec_child(p, fd, oldmask);
    /* Both sides call setpgid so the group exists before either relies on
     * it; after the child's exec this may fail with EACCES, which is fine. */
    setpgid(pid, pid);
    j->pid = pid;
    j->prog = p;
    j->out_fd = fd;
    j->start = now_s();
    j->deadline = timeout_s > 0 ? j->start + timeout_s : 0;
}

/* Prints the last TAIL_LINES lines of the captured output, indented. */
static void print_tail(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size == 0) {
        printf("    (no output)\n");
        return;
    }
    off_t size = st.st_size;
    off_t from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
    static char buf[TAIL_BYTES + 1];
    ssize_t n = pread(fd, buf, (size_t)(size - from), from);
    if (n <= 0) {
        printf("    (output unreadable)\n");
        return;
    }
    buf[n] = 0;

    /* Walk back over TAIL_LINES newlines, not counting a final one. */
    ssize_t end = n;
    if (end > 0 && buf[end - 1] == '\n')
        end--;
    ssize_t begin = end;
    int lines = 0;
    while (begin > 0) {
        if (buf[begin - 1] == '\n' && ++lines == TAIL_LINES)
            break;
        begin--;
    }
    if (begin > 0 || from > 0)
        printf("    [... earlier output left out]\n");
    char *line = buf + begin;
    buf[end] = 0;
    while (line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        printf("    %s\n", line);
        line = nl ? nl + 1 : NULL;
    }
}

/* The child has ended (status valid) or timed out (timed_out). */
static void report(struct job *j, int status, int timed_out)
{
    double secs = now_s() - j->start;
    const char *name = display(j->prog);
    if (!timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("PASS %s (%.2fs)\n", name, secs);
        passed++;
    } else {
        char why[64];
        if (timed_out)
            snprintf(why, sizeof(why), "TIMEOUT");
        else if (WIFSIGNALED(status))
            snprintf(why, sizeof(why), "signal %d", WTERMSIG(status));
        else
            snprintf(why, sizeof(why), "exit %d", WEXITSTATUS(status));
        printf("FAIL %s (%s) (%.2fs)\n", name, why, secs);
        print_tail(j->out_fd);
        failures = xrealloc(failures, sizeof(char *) * (size_t)(failed + 1));
        failures[failed] = strdup(name);
        failed++;
    }
    fflush(stdout);
    close(j->out_fd);
    j->pid = 0;
}

/* Kills the job's process group and reaps its leader. */
static int kill_and_reap(struct job *j)
{
    int status = 0;
    kill(-j->pid, SIGKILL);
    while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* Checks every running job once; returns how many are still running. */
static int poll_jobs(void)
{
    int running = 0;
    double now = now_s();
    for (int i = 0; i < njobs; i++) {
        struct job *j = &jobs[i];
        if (!j->pid)
            continue;
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        int r = waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (r == 0 && si.si_pid == j->pid) {
            /* Ended: clear out whatever it left in its group, then reap. */
            report(j, kill_and_reap(j), 0);
        } else if (r < 0 && errno != EINTR) {
            die("waitid: %s", strerror(errno));
        } else if (j->deadline > 0 && now >= j->deadline) {
            kill_and_reap(j);
            report(j, 0, 1);
        } else {
            running++;
        }
    }
    return running;
}

static void on_sigchld(int sig)
{
    (void)sig; /* only here so SIGCHLD is never discarded */
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);

    jobs = xrealloc(NULL, sizeof(*jobs) * (size_t)njobs);
    memset(jobs, 0, sizeof(*jobs) * (size_t)njobs);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);

    sigset_t wait_set, oldmask;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGCHLD);
    sigaddset(&wait_set, SIGINT);
    sigaddset(&wait_set, SIGTERM);
    sigaddset(&wait_set, SIGHUP);
    sigprocmask(SIG_BLOCK, &wait_set, &oldmask);

    const char *filter = getenv("WEFT_TEST_FILTER");
    int next = 0, running = 0;
    for (;;) {
        while (running < njobs && next < nprogs) {
            int p = next++;
            if (!selected(p, filter))
                continue;
            for (int i = 0; i < njobs; i++) {
                if (!jobs[i].pid) {
                    start(&jobs[i], p, &oldmask);
                    running++;
                    break;
                }
            }
        }
        if (running == 0)
            break;

        /* Sleep until a child changes state, a signal comes, or the nearest
         * deadline; at most 1 s, so nothing depends on signal delivery. */
        double wait = 1.0, now = now_s();
        for (int i = 0; i < njobs; i++) {
            if (jobs[i].pid && jobs[i].deadline > 0 && jobs[i].deadline - now < wait)
                wait = jobs[i].deadline - now;
        }
        if (wait < 0)
            wait = 0;
        struct timespec ts = {.tv_sec = (time_t)wait,
                              .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
        int sig = sigtimedwait(&wait_set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            for (int i = 0; i < njobs; i++) {
                if (jobs[i].pid)
                    kill_and_reap(&jobs[i]);
            }
            fprintf(stderr, "runner: interrupted by signal %d\n", sig);
            return 2;
        }
        running = poll_jobs();
    }

    if (failed) {
        printf("failed:\n");
        for (int i = 0; i < failed; i++)
            printf("    %s\n", failures[i]);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
