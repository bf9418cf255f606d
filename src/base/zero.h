/* zero.h - zeroing large static arrays cheaply (a fork child's reset). */
#ifndef WEFT_BASE_ZERO_H
#define WEFT_BASE_ZERO_H

#include <stddef.h>

/*
 * Zeroes n bytes at p, which must be private memory of this process (a
 * static array, heap). The whole pages inside it are dropped with
 * MADV_DONTNEED, which maps them to the zero page at no cost, where a
 * memset would copy every page the parent had touched (a copy-on-write
 * fault each, after a fork); the ragged ends are cleared with memset.
 * Static arrays in .bss are anonymous memory, so their whole pages read
 * back as zeros, not as the file's contents.
 */
void weft__zero(void *p, size_t n);

#endif
