/*
 * spawn.c - starting a proc's child (fork or exec), killing its process
 * group, and reaping it.
 *
 * The forker. Every child is made by one kernel thread of weft's, started
 * with the first proc, which blocks every signal and lives as long as the
 * process. A caller hands it a job and waits on a weft condition variable
 * (a weft thread parks; a plain kernel thread blocks), so:
 *
 *   - fork and posix_spawn never run on a worker: a fork copies the page
 *     tables of the whole process, milliseconds in a big one, and the
 *     worker would be stuck for all of it;
 *   - a fork child continues on the forker's own 8 MiB stack, not on some
 *     64 KiB weft stack, and runs its entries there;
 *   - PR_SET_PDEATHSIG fires when the thread that made the child exits;
 *     the forker never exits, so the child dies with the parent process
 *     and not with whatever thread happened to make it.
 *
 * Fork mode, in the child (fork_child): only the forker's kernel thread
 * exists there, and every other thread's state (weft's internal locks, run
 * queues, the poller's epoll fd, which the child shares with the parent,
 * timers, caches) is a copy frozen mid-flight. So before anything else the
 * child puts every layer back to "not started" (the *_reset_child
 * functions: sched, parking lot, io, threads and the handle table's pins,
 * stop: the group tree mutex, every group's lock, members and counts); its
 * first weft call starts a fresh runtime with one worker. Where a reset
 * must walk a structure that another thread may be changing, the forker
 * holds that structure's lock around fork (the group tree mutex: the
 * stop layer's fork_prepare and fork_parent), so the child finds it
 * whole. glibc's fork has reset malloc's and
 * stdio's locks; the child drops the copy of stdout's buffer so the
 * parent's pending output is not printed twice. The parent's other threads
 * are not stopped: nothing of theirs is used in the child.
 *
 * Exec mode: posix_spawn of /proc/self/exe (a vfork: no page tables
 * copied) in a new process group, with an empty signal mask, default
 * signal actions, the region's memfd, the doorbell eventfd and the keep
 * fds made inheritable, and WEFT_PROC_CHILD=memfd,efd in the environment;
 * child.c takes over in the new image.
 *
 * Killing and reaping agree through p->mu. The child itself is signalled
 * through its pidfd, which names that process and no other, reaped or
 * not. Its process group can only be named by number (kill(-pid)), and
 * that number is safe exactly while the child is unreaped: a zombie still
 * holds its pid, so no new process or group can take it. So the reap's
 * waitid and its clearing of p->alive happen in one critical section
 * under mu, and weft__proc_signal, also under mu, signals the group only
 * when alive is set and a waitid(WNOWAIT) sees the child still unreaped.
 * Before, the reap ran waitid outside the lock and cleared alive later; a
 * weft_proc_kill in between found alive still set and sent SIGKILL to a
 * group number that could by then belong to someone else:
 *
 *   caller (reap)                 another thread (weft_proc_kill)
 *   waitid: child reaped
 *     (pid free; a new process
 *      may take it as its group)
 *                                 lock mu; alive: true
 *                                 kill(-pid, SIGKILL)   <- a stranger's group
 *   lock mu; alive = false
 *
 * With the reap under mu the kill sees either alive (the child not yet
 * reaped: its pid is still its own) or !alive (nothing to signal).
 *
 * Reaping: wait for the pidfd to become readable (weft_fdwait: the caller
 * parks; outside mu), then waitid(P_PIDFD, WNOHANG) under mu. A process
 * that reaps children it does not know (waitpid(-1), SIGCHLD ignored)
 * takes this status away: weft then reports the child as ended, status
 * unknown, and it may reap the child between weft's check and its kill
 * of the group, which no lock of ours can prevent (weft_proc(3) says so).
 */
#include "proc/proc.h"
#include "sync/sync.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKER_STACK (8u << 20)

extern char **environ;

struct job {
    struct weft_proc *p;
    pid_t pid;           /* written by the forker before done */
    int err;
    bool done;           /* mu */
    weft_mutex_t mu;
    weft_cond_t cv;
    struct job *next;    /* jlock */
};

static pthread_mutex_t jlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jcond = PTHREAD_COND_INITIALIZER;
static struct job *jhead, *jtail; /* jlock */
static bool forker_up;            /* jlock */

/* ---- fork mode: the child ----------------------------------------------- */

static _Noreturn void fork_child(struct weft_proc *p)
{
    struct region *r = p->r;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != r->parent_pid)
        _exit(127); /* the parent died before the line above */
    weft__sched_reset_child();
    weft__park_reset_child();
    weft__io_reset_child();
    weft__thread_reset_child();
    weft__stop_reset_child();
    /* The proc layer's own: the forker and its queue are the parent's. */
    pthread_mutex_t m0 = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c0 = PTHREAD_COND_INITIALIZER;
    memcpy(&jlock, &m0, sizeof m0);
    memcpy(&jcond, &c0, sizeof c0);
    jhead = jtail = NULL;
    forker_up = false;
    __fpurge(stdout);
    __fpurge(stderr);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    if (weft__proc_child_setup(r) < 0)
        _exit(126);
    weft__proc_child_serve(r, p->efd);
}

/* ---- exec mode ------------------------------------------------------------ */

static int spawn_exec(struct weft_proc *p, pid_t *pid)
{
    char var[64];
    snprintf(var, sizeof var, "WEFT_PROC_CHILD=%d,%d", p->memfd, p->efd);
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "WEFT_PROC_CHILD=", 16) != 0)
            env[k++] = environ[i];
    env[k++] = var;
    env[k] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    /* dup2 of a fd onto itself clears its FD_CLOEXEC (glibc 2.29+). */
    posix_spawn_file_actions_adddup2(&fa, p->memfd, p->memfd);
    posix_spawn_file_actions_adddup2(&fa, p->efd, p->efd);
    for (int i = 0; i < p->cfg.nkeep; i++) /* ours: the region's may be scribbled */
        posix_spawn_file_actions_adddup2(&fa, p->cfg.keep[i], p->cfg.keep[i]);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    char *argv[] = {program_invocation_name, NULL};
    int e = posix_spawn(pid, "/proc/self/exe", &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    return -e;
}

/* ---- the forker ------------------------------------------------------------ */

static void run_job(struct job *j)
{
    struct weft_proc *p = j->p;
    if (p->mode == WEFT_PROC_EXEC) {
        j->err = spawn_exec(p, &j->pid);
        return;
    }
    weft__stop_fork_prepare();
    pid_t pid = fork();
    if (pid == 0)
        fork_child(p);
    int e = errno;
    weft__stop_fork_parent();
    if (pid < 0) {
        j->err = -e;
        return;
    }
    setpgid(pid, pid); /* the child does it too: whoever is first */
    j->pid = pid;
    j->err = 0;
}

static void *forker_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&jlock);
        while (!jhead)
            pthread_cond_wait(&jcond, &jlock);
        struct job *j = jhead;
        jhead = j->next;
        if (!jhead)
            jtail = NULL;
        pthread_mutex_unlock(&jlock);
        run_job(j);
        weft_mutex_lock(&j->mu);
        j->done = true;
        weft_cond_signal(&j->cv);
        weft_mutex_unlock(&j->mu); /* after this j may be gone */
    }
    return NULL;
}

/* Called with jlock held. */
static int forker_start(void)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, FORKER_STACK);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int e = pthread_create(&t, &a, forker_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (e == 0)
        forker_up = true;
    return -e;
}

static int pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
}

int weft__proc_spawn(struct weft_proc *p)
{
    /* Whatever the last child (or something it started) left in the
     * region, the new one finds what the parent chose (proc.h). */
    struct region *r = p->r;
    r->magic = REGION_MAGIC;
    r->size = p->map_size;
    r->ring_size = p->ring_size;
    r->shared_off = p->shared_off;
    r->shared_size = p->shared_size;
    r->cfg = p->cfg;
    weft__ring_reset(&p->end);
    r->parent_pid = getpid();
    if (p->mode == WEFT_PROC_EXEC)
        weft__proc_expected(r);

    struct job j = {.p = p, .mu = WEFT_MUTEX_INIT, .cv = WEFT_COND_INIT};
    pthread_mutex_lock(&jlock);
    int e = forker_up ? 0 : forker_start();
    if (e == 0) {
        if (jtail)
            jtail->next = &j;
        else
            jhead = &j;
        jtail = &j;
        pthread_cond_signal(&jcond);
    }
    pthread_mutex_unlock(&jlock);
    if (e < 0)
        return e;
    /* An untimed condition wait: a stop does not end it, so j outlives
     * the forker's last touch (its unlock of j.mu). */
    weft_mutex_lock(&j.mu);
    while (!j.done)
        weft_cond_wait(&j.cv, &j.mu, WEFT_FOREVER);
    weft_mutex_unlock(&j.mu);
    if (j.err < 0)
        return j.err;

    int fd = pidfd_open(j.pid);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (fd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        e = -weft__errno_get();
        kill(-j.pid, SIGKILL);
        kill(j.pid, SIGKILL);
        if (fd >= 0)
            close(fd);
        while (waitpid(j.pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return e;
    }
    ilock(&p->mu);
    p->pid = j.pid;
    p->pidfd = fd;
    p->alive = true;
    p->signalled = false;
    p->st.pid = j.pid;
    p->st.started++;
    iunlock(&p->mu);
    return 0;
}

void weft__proc_signal(struct weft_proc *p)
{
    if (!p->alive)
        return;
    /* Under mu with alive set, weft has not reaped the child (see top).
     * WNOWAIT leaves it as it is: 0 with no pid (or EAGAIN, once a reap
     * made the pidfd non-blocking) while it runs, its pid once it is a
     * zombie; ECHILD if somebody else reaped it. */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int w = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG | WNOWAIT);
    bool running = (w == 0 && si.si_pid == 0) || (w < 0 && errno == EAGAIN);
    if (running)
        p->signalled = true; /* weft is what kills it */
    /* The group too, whatever the child started in it, but only while
     * the group's number is surely still the child's. */
    if (w == 0 || running)
        kill(-p->pid, SIGKILL);
    syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
}

/* Under p->mu: tries to reap the child, and if it is gone (reaped here,
 * or by somebody else) forgets it in the same critical section (see top).
 * Returns the pidfd to close, or -1 while the child still runs. */
static int try_reap(struct weft_proc *p)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG);
    if (r == 0 && si.si_pid == 0)
        return -1; /* not yet */
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return -1; /* not yet, said by a non-blocking pidfd; or try again */
    bool known = r == 0; /* else ECHILD: somebody else reaped it */
    int fd = p->pidfd;
    p->pidfd = -1;
    p->alive = false;
    p->st.exited = known && si.si_code == CLD_EXITED;
    p->st.code = p->st.exited ? si.si_status : 0;
    p->st.signal = known && si.si_code != CLD_EXITED ? si.si_status : 0;
    p->st.killed = p->signalled;
    return fd;
}

void weft__proc_reap(struct weft_proc *p)
{
    if (!p->alive)
        return;
    int pidfd = p->pidfd; /* fixed until the reap below: only we reap */
    int fd;
    for (;;) {
        ilock(&p->mu);
        fd = try_reap(p);
        iunlock(&p->mu);
        if (fd >= 0)
            break;
        if (weft_fdwait(pidfd, WEFT_IN, WEFT_FOREVER) < 0) {
            /* The wait itself was refused (the caller is being stopped):
             * block instead. Only for a dying child, so briefly. The
             * pidfd is non-blocking by now (weft_fdwait made it so), so
             * waitid would say EAGAIN: poll(2) is the blocking wait. */
            struct pollfd pf = {.fd = pidfd, .events = POLLIN};
            while (poll(&pf, 1, -1) < 0 && errno == EINTR)
                ;
        }
    }
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
    weft_close(fd); /* weft_fdwait may have put it in the poller's table */
}
