/*
 * panic.c - the abort path. It runs in signal handlers (the stack-overflow
 * report) and on a thread whose stack may be nearly spent, so it neither
 * allocates nor calls stdio: a tiny formatter writes into a stack buffer and
 * one write(2) sends it.
 */
#include "base/panic.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int put_num(char *buf, int at, int cap, unsigned long long v, int base)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n && at < cap)
        buf[at++] = tmp[--n];
    return at;
}

static int vformat(char *buf, int cap, const char *fmt, va_list ap)
{
    int at = 0;
    cap--; /* room for the NUL */
    for (const char *f = fmt; *f && at < cap; f++) {
        if (*f != '%') {
            buf[at++] = *f;
            continue;
        }
        f++;
        int lng = 0;
        while (*f == 'l') {
            lng++;
            f++;
        }
        if (*f == 'z') {
            lng = 1;
            f++;
        }
        switch (*f) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            while (*s && at < cap)
                buf[at++] = *s++;
            break;
        }
        case 'd': {
            long long v = lng == 2 ? va_arg(ap, long long)
                          : lng    ? va_arg(ap, long)
                                   : va_arg(ap, int);
            if (v < 0 && at < cap) {
                buf[at++] = '-';
                v = -v;
            }
            at = put_num(buf, at, cap, (unsigned long long)v, 10);
            break;
        }
        case 'u':
            at = put_num(buf, at, cap,
                         lng == 2 ? va_arg(ap, unsigned long long)
                         : lng    ? va_arg(ap, unsigned long)
                                  : va_arg(ap, unsigned),
                         10);
            break;
        case 'p':
            if (at + 2 < cap) {
                buf[at++] = '0';
                buf[at++] = 'x';
            }
            at = put_num(buf, at, cap, (uintptr_t)va_arg(ap, void *), 16);
            break;
        case '%':
            buf[at++] = '%';
            break;
        default:
            break;
        }
        if (!*f)
            break;
    }
    buf[at] = 0;
    return at;
}

int weft__format(char *buf, int cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

void weft__panic(const char *fmt, ...)
{
    char buf[512];
    memcpy(buf, "weft: ", 6);
    va_list ap;
    va_start(ap, fmt);
    int n = 6 + vformat(buf + 6, (int)sizeof buf - 7, fmt, ap);
    va_end(ap);
    buf[n++] = '\n';
    ssize_t r = write(2, buf, (size_t)n);
    (void)r;
    abort();
}
