/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * log-tool.h - what shf-log(1) asks of the log beyond the API.  The tool
 * links the library's own objects (lib/ipc.am), so these are neither
 * exported nor part of the ABI; never installed.
 */
#ifndef SHF_LOG_TOOL_H
#define SHF_LOG_TOOL_H

#include <stdint.h>

#include "shf.h"

/* The longest line shf_log_append() takes in shf's log; 0 with errno. */
uint32_t shf_log_tool_line_max(SHF *shf);
/*
 * The lines this process's drain thread could not write to its fd (see
 * log-internal.h) and the errno of the last of them; exact once
 * shf_log_thread_del() has returned.
 */
void shf_log_tool_lost(uint64_t *lines, int *err);
/* 1 if shf's file has been removed (no directory names it). */
int shf_log_tool_removed(SHF *shf);

#endif /* SHF_LOG_TOOL_H */
