/* chunked.c - strict incremental chunked decoder (see chunked.h). */
#include "chunked.h"

#include <stdbool.h>

#include "limits.h"

enum {
    CS_SIZE,    /* hex digits of a chunk size */
    CS_EXT_BWS, /* whitespace after the size: only ';' may follow */
    CS_EXT,     /* after the size: extensions until CR */
    CS_SIZE_LF, /* CR seen, LF must follow */
    CS_DATA,    /* chunk data */
    CS_DATA_CR, /* CRLF after data */
    CS_DATA_LF,
    CS_TRAILER, /* start of a trailer line (or the final CRLF) */
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF, /* CR of a trailer line seen */
    CS_END_LF,     /* CR of the final empty line seen */
    CS_DONE,
};

static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    switch (ch) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    }
    return false;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

void chunked_decoder_init(struct chunked_decoder *d)
{
    d->state = CS_SIZE;
    d->remaining = 0;
    d->line_len = 0;
    d->trailer_len = 0;
    d->digits = 0;
}

/* Extensions are checked loosely but safely: after the size only
 * ";", "=", tokens, quoted strings, SP and HT may appear. */
static bool ext_char_ok(unsigned char ch)
{
    return ch == ';' || ch == '=' || ch == ' ' || ch == '\t' || ch == '"' || ch == '\\' ||
           is_tchar(ch) || (ch >= 0x20 && ch != 0x7f);
}

int chunked_decode(struct chunked_decoder *d, const char *in, size_t len, size_t *consumed,
                   struct iovec *segs, size_t *nsegs, size_t maxsegs)
{
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)in[i];
        switch (d->state) {
        case CS_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (d->remaining > (UINT64_C(0x7fffffffffffffff) >> 4))
                    return CHUNKED_ERROR;
                d->remaining = (d->remaining << 4) | (uint64_t)v;
                d->digits++;
                d->line_len++;
                i++;
                break;
            }
            if (d->digits == 0)
                return CHUNKED_ERROR;
            if (ch == '\r') {
                d->state = CS_SIZE_LF;
                i++;
                break;
            }
            if (ch == ';') {
                d->state = CS_EXT;
                break;
            }
            if (ch == ' ' || ch == '\t') {
                d->state = CS_EXT_BWS;
                break;
            }
            return CHUNKED_ERROR;
        }
        case CS_EXT_BWS:
            if (ch == ';') {
                d->state = CS_EXT;
                break;
            }
            if ((ch != ' ' && ch != '\t') || ++d->line_len > LIMIT_CHUNK_LINE_BYTES)
                return CHUNKED_ERROR;
            i++;
            break;
        case CS_EXT:
            if (ch == '\r') {
                d->state = CS_SIZE_LF;
                i++;
                break;
            }
            if (!ext_char_ok(ch) || ++d->line_len > LIMIT_CHUNK_LINE_BYTES)
                return CHUNKED_ERROR;
            i++;
            break;
        case CS_SIZE_LF:
            if (ch != '\n')
                return CHUNKED_ERROR;
            i++;
            d->line_len = 0;
            d->digits = 0;
            d->state = d->remaining ? CS_DATA : CS_TRAILER;
            break;
        case CS_DATA: {
            if (*nsegs == maxsegs) {
                *consumed = i;
                return CHUNKED_MORE;
            }
            size_t n = len - i;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            segs[*nsegs].iov_base = (void *)(in + i);
            segs[*nsegs].iov_len = n;
            (*nsegs)++;
            d->remaining -= n;
            i += n;
            if (d->remaining == 0)
                d->state = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR:
            if (ch != '\r')
                return CHUNKED_ERROR;
            d->state = CS_DATA_LF;
            i++;
            break;
        case CS_DATA_LF:
            if (ch != '\n')
                return CHUNKED_ERROR;
            d->state = CS_SIZE;
            i++;
            break;
        case CS_TRAILER:
            if (ch == '\r') {
                d->state = CS_END_LF;
                i++;
                break;
            }
            if (!is_tchar(ch))
                return CHUNKED_ERROR;
            d->state = CS_TRAILER_NAME;
            break;
        case CS_TRAILER_NAME:
            if (++d->trailer_len > LIMIT_TRAILER_BYTES)
                return CHUNKED_ERROR;
            if (ch == ':') {
                d->state = CS_TRAILER_VALUE;
                i++;
                break;
            }
            if (!is_tchar(ch))
                return CHUNKED_ERROR;
            i++;
            break;
        case CS_TRAILER_VALUE:
            if (++d->trailer_len > LIMIT_TRAILER_BYTES)
                return CHUNKED_ERROR;
            if (ch == '\r') {
                d->state = CS_TRAILER_LF;
                i++;
                break;
            }
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return CHUNKED_ERROR;
            i++;
            break;
        case CS_TRAILER_LF:
            if (ch != '\n')
                return CHUNKED_ERROR;
            d->state = CS_TRAILER;
            i++;
            break;
        case CS_END_LF:
            if (ch != '\n')
                return CHUNKED_ERROR;
            d->state = CS_DONE;
            i++;
            *consumed = i;
            return CHUNKED_DONE;
        case CS_DONE:
            *consumed = i;
            return CHUNKED_DONE;
        }
    }
    *consumed = i;
    return d->state == CS_DONE ? CHUNKED_DONE : CHUNKED_MORE;
}

size_t chunked_size_line(uint64_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n);
    size_t len = 0;
    while (k)
        out[len++] = tmp[--k];
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}
