/* tscli.h - the `portico tailscale ...` commands (see tscli.c). */
#ifndef PORTICO_TSCLI_H
#define PORTICO_TSCLI_H

#include <stdbool.h>

/* Whether sub is one of plan, apply, status, policy. */
bool tscli_known(const char *sub);

/* Run `portico tailscale SUB -c config_path`; returns the exit status. */
int tscli_run(const char *sub, const char *config_path);

#endif
