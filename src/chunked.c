/* chunked.c - strict incremental chunked decoder (see chunked.h).
 *
 * A byte-at-a-time state machine for the framing, with data chunks handed
 * out as whole segments, so any split of the input gives the same result.
 * Grammar (RFC 9112 section 7.1):
 *
 *   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext  = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val    = token / quoted-string
 *   last-chunk = 1*"0" [ chunk-ext ] CRLF
 *   trailer    = *( field-name ":" OWS field-value OWS CRLF ) CRLF */
#include "chunked.h"

#include <stdbool.h>

#include "hex.h"
#include "limits.h"

#define CHUNK_SIZE_DIGITS_MAX 16

enum {
    CS_SIZE,        /* hex digits of a chunk size */
    CS_SIZE_WS,     /* BWS after the size: only ';' may follow */
    CS_EXT_START,   /* after ';': BWS, then an extension name */
    CS_EXT_NAME,    /* in an extension name */
    CS_EXT_NAME_WS, /* BWS after a name: '=' or ';' must follow */
    CS_EXT_VAL_START,
    CS_EXT_TOKEN,   /* token value */
    CS_EXT_QUOTED,  /* quoted-string value */
    CS_EXT_QPAIR,   /* after a backslash in a quoted string */
    CS_EXT_VAL_END, /* right after a value: ';', BWS or CR */
    CS_EXT_VAL_WS,  /* BWS after a value: only ';' may follow */
    CS_SIZE_LF,     /* CR of the size line seen, LF must follow */
    CS_DATA,        /* chunk data */
    CS_DATA_CR,     /* CRLF after data */
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

static bool is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

/* qdtext and the second byte of a quoted-pair share this set, minus '"'
 * and '\\' for qdtext. */
static bool is_qchar(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

void chunked_decoder_init(struct chunked_decoder *d)
{
    d->state = CS_SIZE;
    d->remaining = 0;
    d->line_len = 0;
    d->trailer_len = 0;
    d->digits = 0;
}

/* One byte of a chunk-size line after the digits. Returns the next state,
 * or -1 when the byte cannot appear there. */
static int size_line_step(int state, unsigned char ch)
{
    switch (state) {
    case CS_SIZE_WS:
    case CS_EXT_VAL_WS:
        if (ch == ';')
            return CS_EXT_START;
        return is_ws(ch) ? state : -1;
    case CS_EXT_START:
        if (is_ws(ch))
            return state;
        return is_tchar(ch) ? CS_EXT_NAME : -1;
    case CS_EXT_NAME:
        if (ch == '\r')
            return CS_SIZE_LF;
        if (ch == ';')
            return CS_EXT_START;
        if (ch == '=')
            return CS_EXT_VAL_START;
        if (is_ws(ch))
            return CS_EXT_NAME_WS;
        return is_tchar(ch) ? state : -1;
    case CS_EXT_NAME_WS:
        if (ch == ';')
            return CS_EXT_START;
        if (ch == '=')
            return CS_EXT_VAL_START;
        return is_ws(ch) ? state : -1;
    case CS_EXT_VAL_START:
        if (is_ws(ch))
            return state;
        if (ch == '"')
            return CS_EXT_QUOTED;
        return is_tchar(ch) ? CS_EXT_TOKEN : -1;
    case CS_EXT_TOKEN:
        if (is_tchar(ch))
            return state;
        return size_line_step(CS_EXT_VAL_END, ch);
    case CS_EXT_QUOTED:
        if (ch == '"')
            return CS_EXT_VAL_END;
        if (ch == '\\')
            return CS_EXT_QPAIR;
        return is_qchar(ch) ? state : -1;
    case CS_EXT_QPAIR:
        return is_qchar(ch) ? CS_EXT_QUOTED : -1;
    case CS_EXT_VAL_END:
        if (ch == '\r')
            return CS_SIZE_LF;
        if (ch == ';')
            return CS_EXT_START;
        return is_ws(ch) ? CS_EXT_VAL_WS : -1;
    }
    return -1;
}

int chunked_decode(struct chunked_decoder *d, const char *in, size_t len, size_t *consumed,
                   struct iovec *segs, size_t *nsegs, size_t maxsegs)
{
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)in[i];
        switch (d->state) {
        case CS_SIZE: {
            int v = hex_digit_value(ch);
            if (v >= 0) {
                if (++d->digits > CHUNK_SIZE_DIGITS_MAX ||
                    d->remaining > (UINT64_C(0x7fffffffffffffff) >> 4))
                    return CHUNKED_ERROR;
                d->remaining = (d->remaining << 4) | (uint64_t)v;
                d->line_len++;
                i++;
                break;
            }
            if (d->digits == 0)
                return CHUNKED_ERROR; /* no size, or a sign, space or "0x" before it */
            if (ch == '\r')
                d->state = CS_SIZE_LF;
            else if (ch == ';')
                d->state = CS_EXT_START;
            else if (is_ws(ch))
                d->state = CS_SIZE_WS;
            else
                return CHUNKED_ERROR;
            d->line_len++;
            i++;
            break;
        }
        case CS_SIZE_WS:
        case CS_EXT_START:
        case CS_EXT_NAME:
        case CS_EXT_NAME_WS:
        case CS_EXT_VAL_START:
        case CS_EXT_TOKEN:
        case CS_EXT_QUOTED:
        case CS_EXT_QPAIR:
        case CS_EXT_VAL_END:
        case CS_EXT_VAL_WS: {
            int next = size_line_step(d->state, ch);
            if (next < 0 || (next != CS_SIZE_LF && ++d->line_len > LIMIT_CHUNK_LINE_BYTES))
                return CHUNKED_ERROR; /* the limit is on the line without its CRLF */
            d->state = next;
            i++;
            break;
        }
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
            if (++d->trailer_len > LIMIT_TRAILER_BYTES)
                return CHUNKED_ERROR;
            if (ch == '\r') {
                d->state = CS_END_LF;
                i++;
                break;
            }
            if (!is_tchar(ch))
                return CHUNKED_ERROR; /* obs-fold, empty name, bare LF */
            d->state = CS_TRAILER_NAME;
            i++;
            break;
        case CS_TRAILER_NAME:
            if (++d->trailer_len > LIMIT_TRAILER_BYTES)
                return CHUNKED_ERROR;
            if (ch == ':')
                d->state = CS_TRAILER_VALUE;
            else if (!is_tchar(ch))
                return CHUNKED_ERROR; /* whitespace before ':', no colon */
            i++;
            break;
        case CS_TRAILER_VALUE:
            if (++d->trailer_len > LIMIT_TRAILER_BYTES)
                return CHUNKED_ERROR;
            if (ch == '\r')
                d->state = CS_TRAILER_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return CHUNKED_ERROR;
            i++;
            break;
        case CS_TRAILER_LF:
            if (ch != '\n' || ++d->trailer_len > LIMIT_TRAILER_BYTES)
                return CHUNKED_ERROR;
            d->state = CS_TRAILER;
            i++;
            break;
        case CS_END_LF:
            if (ch != '\n')
                return CHUNKED_ERROR;
            d->state = CS_DONE;
            *consumed = i + 1;
            return CHUNKED_DONE;
        case CS_DONE:
            *consumed = i;
            return CHUNKED_DONE;
        default:
            return CHUNKED_ERROR;
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

uint64_t chunked_data_left(const struct chunked_decoder *d)
{
    return d->state == CS_DATA ? d->remaining : 0;
}

void chunked_data_taken(struct chunked_decoder *d, uint64_t n)
{
    if (d->state != CS_DATA || n > d->remaining)
        return; /* not in chunk data: nothing could have been taken */
    d->remaining -= n;
    if (d->remaining == 0)
        d->state = CS_DATA_CR;
}
