/*
 * plugin_demo.c - a plugin for examples/isolated_plugin.c, built as
 * build/opt/examples/plugin_demo.so. Each function writes a line into out
 * and returns its length; one of them works, one hangs for ever, one
 * dereferences NULL.
 */
#include <stdio.h>
#include <unistd.h>

#define PLUGIN_API __attribute__((visibility("default")))

PLUGIN_API int plugin_works(char *out, size_t cap);
PLUGIN_API int plugin_hangs(char *out, size_t cap);
PLUGIN_API int plugin_crashes(char *out, size_t cap);

int plugin_works(char *out, size_t cap)
{
    return snprintf(out, cap, "hello from the plugin, in process %d", (int)getpid());
}

int plugin_hangs(char *out, size_t cap)
{
    (void)out, (void)cap;
    for (;;)
        pause();
}

int plugin_crashes(char *out, size_t cap)
{
    (void)out, (void)cap;
    volatile int *nothing = NULL;
    return *nothing;
}
