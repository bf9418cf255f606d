/*
 * isolated_plugin.c - a host that runs untrusted plugin code in an
 * isolated child process (weft_proc_t) and survives whatever it does.
 *
 *   isolated_plugin [-e] [PLUGIN.so]
 *
 * The child loads the plugin with dlopen (the host never does) and calls
 * the function the host names. Three functions: one works, one hangs for
 * ever, one dereferences NULL. Each call has a one-second deadline; the
 * host prints what happened, and a weft thread of the host's goes on
 * ticking all the while, since a waiting caller parks instead of blocking
 * its worker. -e runs the child as a fresh exec of this program instead of
 * a fork. PLUGIN.so defaults to plugin_demo.so beside this program.
 */
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

/* In the child: in is "path\0function"; runs the function, returns its line. */
static ssize_t run_plugin(weft_proc_ctx_t *ctx, const void *in, size_t len, void *out, size_t cap)
{
    (void)ctx;
    const char *path = in;
    if (len < 2 || ((const char *)in)[len - 1] != 0)
        return -EINVAL;
    const char *fn = path + strlen(path) + 1;
    if (fn >= path + len)
        return -EINVAL;
    void *h = dlopen(path, RTLD_NOW); /* loaded once: dlopen counts references */
    if (!h)
        return -ENOENT;
    int (*f)(char *, size_t) = (int (*)(char *, size_t))dlsym(h, fn);
    if (!f)
        return -ENOSYS;
    int n = f(out, cap);
    return n < 0 ? -EIO : n >= (int)cap ? (ssize_t)cap - 1 : n;
}
WEFT_PROC_ENTRY("run_plugin", run_plugin);

static atomic_long ticks;
static atomic_int done;

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&done)) {
        atomic_fetch_add(&ticks, 1);
        weft_sleep(weft_after(WEFT_MS(10)));
    }
    return NULL;
}

static void call(weft_proc_t *p, const char *plugin, const char *fn)
{
    char in[PATH_MAX + 64], out[256];
    size_t pl = strlen(plugin) + 1, fl = strlen(fn) + 1;
    memcpy(in, plugin, pl);
    memcpy(in + pl, fn, fl);
    long t0 = atomic_load(&ticks);
    int64_t start = weft_now();
    ssize_t n = weft_proc_call(p, "run_plugin", in, pl + fl, out, sizeof out - 1,
                               weft_after(WEFT_SEC(1)));
    double ms = (double)(weft_now() - start) / 1e6;
    long dt = atomic_load(&ticks) - t0;
    weft_proc_status_t st;
    weft_proc_status(p, &st);
    printf("%-15s ", fn);
    if (n >= 0) {
        out[n] = 0;
        printf("ok after %.1f ms: \"%s\"\n", ms, out);
    } else if (n == -ETIMEDOUT) {
        printf("no answer within 1 s: child %d killed (signal %d) and reaped\n", (int)st.pid,
               st.signal);
    } else if (n == -ECHILD && st.signal) {
        printf("crashed: child %d died of signal %d (%s)\n", (int)st.pid, st.signal,
               strsignal(st.signal));
    } else if (n == -ECHILD) {
        printf("crashed: child %d exited with status %d\n", (int)st.pid, st.code);
    } else {
        printf("failed: %s\n", strerror((int)-n));
    }
    printf("%-15s (the host's ticker thread ticked %ld times meanwhile)\n", "", dt);
}

int main(int argc, char **argv)
{
    int mode = WEFT_PROC_FORK;
    int a = 1;
    if (a < argc && !strcmp(argv[a], "-e")) {
        mode = WEFT_PROC_EXEC;
        a++;
    }
    char plugin[PATH_MAX];
    if (a < argc) {
        if (!realpath(argv[a], plugin)) {
            perror(argv[a]);
            return 1;
        }
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0)
            return 1;
        self[n] = 0;
        snprintf(plugin, sizeof plugin, "%s/plugin_demo.so", dirname(self));
    }
    printf("host %d, plugin %s, %s mode\n", (int)getpid(), plugin,
           mode == WEFT_PROC_EXEC ? "exec" : "fork");

    weft_t t;
    weft_spawn(&t, ticker, NULL, NULL);
    weft_proc_opts o = {.mode = mode};
    weft_proc_t *p;
    int r = weft_proc_new(&p, &o);
    if (r < 0) {
        fprintf(stderr, "weft_proc_new: %s\n", strerror(-r));
        return 1;
    }
    const char *fns[] = {"plugin_works", "plugin_hangs", "plugin_crashes", "plugin_works",
                         "plugin_missing"};
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
        call(p, plugin, fns[i]);
    weft_proc_status_t st;
    weft_proc_status(p, &st);
    printf("the host is still here; %lu children served it\n", st.started);
    weft_proc_free(p);
    atomic_store(&done, 1);
    weft_join(t, NULL, WEFT_FOREVER);
    return 0;
}
