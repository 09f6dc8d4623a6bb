/* hostsfile.h - the block of lines portico keeps in a hosts file
 * (tailscale.hairpin), so that processes on the host resolve the names it
 * serves to its local listener.
 *
 * The block is every line from "# BEGIN portico (managed, do not edit)" to
 * "# END portico". Nothing outside it is ever changed, byte for byte: not
 * the line endings (a CRLF file gets CRLF lines in the block), not a
 * missing final newline (a block added to such a file starts with the line
 * break the file lacked and ends without one, and removing it removes that
 * line break again). A file with two blocks, an END without a BEGIN or a
 * BEGIN without an END is refused with the line it concerns: portico does
 * not guess which lines a damaged block was meant to hold. */
#ifndef PORTICO_HOSTSFILE_H
#define PORTICO_HOSTSFILE_H

#include <stdbool.h>
#include <stddef.h>

#define HOSTSFILE_BEGIN "# BEGIN portico (managed, do not edit)"
#define HOSTSFILE_END   "# END portico"

/* Where the block is: bytes [begin, end) of the file, end past the END
 * line's line break when it has one (terminated). */
struct hostsfile_block {
    size_t begin, end;
    bool terminated;
    bool crlf;                   /* the BEGIN line ends in CRLF */
    unsigned begin_line, nlines; /* 1-based line of BEGIN; lines in the block, markers included */
};

/* ---- pure parts ------------------------------------------------------------ */

/* Find the block in buf: 1 with *b filled, 0 when there is none, -1 with
 * "line N: ..." in err when the file has two blocks or a damaged one. */
int hostsfile_find(const char *buf, size_t len, struct hostsfile_block *b, char *err,
                   size_t errlen);

/* buf with its block replaced by one holding lines (each "ADDRESS NAME",
 * without a line break), added at the end when there is none, or removed
 * when remove is set. The result is malloc'ed into *out (NUL-terminated,
 * *outlen bytes without the NUL). 0, or -1 with a sentence in err. */
int hostsfile_rewrite(const char *buf, size_t len, const char *const *lines, size_t nlines,
                      bool remove, char **out, size_t *outlen, char *err, size_t errlen);

/* ---- the file ----------------------------------------------------------------- */

/* Rewrite the file at path (symbolic links followed) as hostsfile_rewrite
 * says, atomically: a temporary file in the same directory with the
 * original's mode and owner, written, fsync'ed and renamed over it, then
 * the directory fsync'ed. A missing file is created (mode 0644) unless
 * the block is being removed. 1 when the file was written, 0 when it
 * already said that (nothing is written), -1 with a sentence in err. */
int hostsfile_update(const char *path, const char *const *lines, size_t nlines, bool remove,
                     char *err, size_t errlen);

/* For `portico check`: 0 when this process could rewrite path (it, or
 * its directory when it does not exist, is writable, and so is the
 * directory a temporary file goes to), else -1 with a sentence in err. */
int hostsfile_check_writable(const char *path, char *err, size_t errlen);

#endif
