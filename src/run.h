/* run.h - `portico run`: serve a configuration until told to stop. */
#ifndef PORTICO_RUN_H
#define PORTICO_RUN_H

/* Load the configuration at path, open its sockets, start the workers and
 * serve until SIGTERM or SIGINT (or until a new process took over after
 * SIGUSR2), reloading on SIGHUP. argv is the command line, kept for the
 * upgrade. Start-up errors are logged. Returns the process's exit status. */
int run_serve(const char *path, char **argv);

#endif
