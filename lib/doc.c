/* doc.c - YAML and JSON into doc_node trees that remember file:line:col.
 *
 * Text is checked first (size, UTF-8, NUL and control characters) so those
 * problems get a clear message instead of a parser's.
 *
 * YAML: libyaml's event parser drives a recursive builder. Recursion is
 * bounded because nesting is checked against RV_DOC_DEPTH_MAX before each
 * level is entered. Aliases are expanded by copying the anchored subtree; the
 * size and height of an anchored subtree are measured when its anchor is
 * defined, so an alias that would pass a limit is refused before a single
 * node is copied ("billion laughs" fails at once).
 *
 * JSON: jansson parses the text and rejects duplicate keys; a small scanner
 * then walks the same, now known-valid, text beside jansson's tree to give
 * every node its position.
 *
 * Every node and string of a doc_file lives in one arena.
 */
#include "doc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "err.h"
#include "limits.h"

/* Arena chunk size: a tuning value, not a limit (files are bounded by
 * RV_SPEC_FILE_MAX); most spec files fit in one or two chunks. */
#define ARENA_CHUNK (64 * 1024)
/* Mappings with fewer keys than this are searched linearly for duplicates;
 * from here on a hash index is built. */
#define KEYSET_LINEAR 16
#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* ---------------------------------------------------------------- arena */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

struct arena {
    struct arena_chunk *head;
};

static void arena_destroy(struct arena *a)
{
    if (a == NULL)
        return;
    struct arena_chunk *c = a->head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

static void *arena_alloc(struct arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n > SIZE_MAX / 4)
        return NULL;
    n = n == 0 ? align : (n + align - 1) & ~(align - 1);
    struct arena_chunk *c = a->head;
    if (c != NULL && c->cap - c->used >= n) {
        void *p = (char *)c->data + c->used;
        c->used += n;
        return p;
    }
    size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
    struct arena_chunk *nc = malloc(sizeof(*nc) + cap);
    if (nc == NULL)
        return NULL;
    nc->cap = cap;
    nc->used = n;
    if (c != NULL && n > ARENA_CHUNK / 2) {
        /* A big block gets a chunk of its own; keep filling the current one. */
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        a->head = nc;
    }
    return nc->data;
}

static char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *d = arena_alloc(a, len + 1);
    if (d == NULL)
        return NULL;
    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* ---------------------------------------------------------------- context */

struct anchor {
    const char *name;
    size_t name_len;
    uint64_t hash;
    const struct doc_node *node;
    const char *text; /* a scalar's text, so an alias can be a key; else NULL */
    size_t text_len;
    size_t size;     /* nodes in the subtree, keys included */
    unsigned height; /* collections on the longest path down; 0 for a scalar */
};

/* One item of a collection being built. In a mapping, key == NULL marks the
 * value of a merge key '<<' found at line:col. */
struct entry {
    struct doc_node *key;
    struct doc_node *value;
    unsigned line;
    unsigned col;
};

struct keyset {
    const struct doc_node **keys; /* keys_inline until it outgrows it */
    uint64_t *hashes;
    size_t len;
    size_t cap;
    uint32_t *slots; /* index + 1, open addressing; NULL while small */
    size_t nslots;
    const struct doc_node *keys_inline[KEYSET_LINEAR];
    uint64_t hashes_inline[KEYSET_LINEAR];
};

struct parse {
    struct arena *arena;
    const char *path;
    struct diag_list *diags;
    const char *text; /* without a byte-order mark */
    size_t len;
    size_t nodes;
    size_t aliases;
    /* YAML */
    yaml_parser_t parser;
    struct anchor *anchors; /* of the current document; later ones win */
    size_t nanchors;
    size_t anchors_total; /* in the whole file */
    size_t anchors_cap;
    struct entry *stack; /* items of the collections being built */
    size_t sp;
    size_t stack_cap;
    /* JSON position scan */
    size_t pos;
    unsigned line;
    unsigned col;
};

__attribute__((format(printf, 5, 6))) static int fail(struct parse *p, int code, unsigned line,
                                                      unsigned col, const char *fmt, ...)
{
    char msg[RV_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->diags != NULL)
        diag_add(p->diags, DIAG_ERROR, p->path, line, col, "", "%s", msg);
    return code;
}

static int fail_nomem(struct parse *p)
{
    return fail(p, RV_ENOMEM, 0, 0, "out of memory while reading the file");
}

/* User text for a message: control characters escaped, cut after
 * RV_DOC_QUOTE_MAX bytes (never inside a UTF-8 sequence). */
struct quoted {
    char s[RV_DOC_QUOTE_MAX + 16];
};

static void quote_into(struct quoted *q, size_t o, const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (o >= RV_DOC_QUOTE_MAX) {
            memcpy(q->s + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x80) {
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            if (n > len - i)
                n = 1;
            if (n == 1) {
                o += (size_t)snprintf(q->s + o, 5, "\\x%02x", c);
            } else {
                memcpy(q->s + o, s + i, n);
                o += n;
            }
            i += n;
            continue;
        }
        if (c == '\n') {
            memcpy(q->s + o, "\\n", 2);
            o += 2;
        } else if (c == '\t') {
            memcpy(q->s + o, "\\t", 2);
            o += 2;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(q->s + o, 5, "\\x%02x", c);
        } else {
            q->s[o++] = (char)c;
        }
        i++;
    }
    q->s[o] = '\0';
}

static const char *quote(struct quoted *q, const char *s, size_t len)
{
    quote_into(q, 0, s, len);
    return q->s;
}

/* A tag as the user wrote it: "tag:yaml.org,2002:int" is shown as "!!int". */
static const char *quote_tag(struct quoted *q, const char *tag)
{
    size_t plen = strlen(YAML_TAG_PREFIX);
    if (strncmp(tag, YAML_TAG_PREFIX, plen) == 0) {
        q->s[0] = '!';
        q->s[1] = '!';
        quote_into(q, 2, tag + plen, strlen(tag + plen));
    } else {
        quote_into(q, 0, tag, strlen(tag));
    }
    return q->s;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

/* ---------------------------------------------------------------- text */

/* Bytes of the line break at t[i], or 0. YAML breaks lines as libyaml does
 * (LF, CR LF, CR, NEL, LS, PS); JSON only at LF, as jansson counts. */
static size_t line_break(const char *t, size_t len, size_t i, bool yaml)
{
    const unsigned char *s = (const unsigned char *)t;
    if (s[i] == '\n')
        return 1;
    if (!yaml)
        return 0;
    if (s[i] == '\r')
        return i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
    if (s[i] == 0xc2 && i + 1 < len && s[i + 1] == 0x85)
        return 2;
    if (s[i] == 0xe2 && i + 2 < len && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
        return 3;
    return 0;
}

/* 1-based line and column (in characters) of byte offset off. */
static void text_pos(const char *t, size_t len, size_t off, bool yaml, unsigned *line,
                     unsigned *col)
{
    unsigned l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off;) {
        size_t brk = line_break(t, len, i, yaml);
        if (brk) {
            l++;
            c = 1;
            i += brk;
            continue;
        }
        if (((unsigned char)t[i] & 0xc0) != 0x80)
            c++;
        i++;
    }
    *line = l;
    *col = c;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    uint32_t v;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0fu;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07u;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if (s[k] < lo || s[k] > hi)
            return 0;
        lo = 0x80;
        hi = 0xbf;
        v = (v << 6) | (s[k] & 0x3fu);
    }
    *cp = v;
    return len;
}

/* Characters YAML does not allow in a stream (YAML 1.2 c-printable). */
static bool yaml_forbidden(uint32_t cp)
{
    if (cp < 0x20)
        return cp != '\t' && cp != '\n' && cp != '\r';
    if (cp >= 0x7f && cp <= 0x9f)
        return cp != 0x85;
    return cp == 0xfffe || cp == 0xffff;
}

/* Text checks. Plain ASCII (printable, tab, line feed) is the common case
 * and is passed over quickly; a position is only worked out for an error. */
static int check_text(struct parse *p, bool yaml)
{
    const unsigned char *s = (const unsigned char *)p->text;
    size_t len = p->len;
    unsigned line, col;

    if (len >= 2 && ((s[0] == 0xff && s[1] == 0xfe) || (s[0] == 0xfe && s[1] == 0xff)))
        return fail(p, RV_EPARSE, 1, 1, "file is encoded as UTF-16; save it as UTF-8");
    for (size_t i = 0; i < len;) {
        uint32_t cp = s[i];
        size_t n = 1;
        if ((cp >= 0x20 && cp < 0x7f) || cp == '\n' || cp == '\t') {
            i++;
            continue;
        }
        if (cp == 0) {
            text_pos(p->text, len, i, yaml, &line, &col);
            return fail(p, RV_EPARSE, line, col,
                        "NUL byte in file; spec files must be UTF-8 text (is this a binary file?)");
        }
        if (cp >= 0x80) {
            n = utf8_decode(s + i, len - i, &cp);
            if (n == 0) {
                text_pos(p->text, len, i, yaml, &line, &col);
                return fail(p, RV_EPARSE, line, col,
                            "invalid UTF-8 byte 0x%02x; save the file as UTF-8", s[i]);
            }
        }
        if (yaml && yaml_forbidden(cp)) {
            text_pos(p->text, len, i, yaml, &line, &col);
            return fail(p, RV_EPARSE, line, col,
                        "control character U+%04X is not allowed; remove it or write it as an "
                        "escape in a double-quoted string",
                        (unsigned)cp);
        }
        i += n;
    }
    return 0;
}

/* ---------------------------------------------------------------- nodes */

static int new_node(struct parse *p, struct doc_node **out, enum doc_kind kind, unsigned line,
                    unsigned col)
{
    if (p->nodes >= RV_DOC_NODES_MAX)
        return fail(p, RV_ELIMIT, line, col,
                    "too many nodes: more than %d in one file; split it into smaller files",
                    RV_DOC_NODES_MAX);
    struct doc_node *n = arena_alloc(p->arena, sizeof(*n));
    if (n == NULL)
        return fail_nomem(p);
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = line;
    n->col = col;
    p->nodes++;
    *out = n;
    return 0;
}

static void measure(const struct doc_node *n, size_t *size, unsigned *height)
{
    size_t s = 1, cs;
    unsigned h = 0, ch;
    if (n->kind == DOC_SEQ) {
        h = 1;
        for (size_t i = 0; i < n->u.seq.len; i++) {
            measure(n->u.seq.items[i], &cs, &ch);
            s += cs;
            if (ch + 1 > h)
                h = ch + 1;
        }
    } else if (n->kind == DOC_MAP) {
        h = 1;
        for (size_t i = 0; i < n->u.map.len; i++) {
            measure(n->u.map.items[i].value, &cs, &ch);
            s += 1 + cs;
            if (ch + 1 > h)
                h = ch + 1;
        }
    }
    *size = s;
    *height = h;
}

/* Deep copy; the caller has already counted the nodes. Strings are shared:
 * nothing changes a node once it is built. */
static struct doc_node *copy_tree(struct parse *p, const struct doc_node *src)
{
    struct doc_node *n = arena_alloc(p->arena, sizeof(*n));
    if (n == NULL)
        return NULL;
    *n = *src;
    if (src->kind == DOC_SEQ && src->u.seq.len) {
        n->u.seq.items = arena_alloc(p->arena, src->u.seq.len * sizeof(*n->u.seq.items));
        if (n->u.seq.items == NULL)
            return NULL;
        for (size_t i = 0; i < src->u.seq.len; i++) {
            n->u.seq.items[i] = copy_tree(p, src->u.seq.items[i]);
            if (n->u.seq.items[i] == NULL)
                return NULL;
        }
    } else if (src->kind == DOC_MAP && src->u.map.len) {
        n->u.map.items = arena_alloc(p->arena, src->u.map.len * sizeof(*n->u.map.items));
        if (n->u.map.items == NULL)
            return NULL;
        for (size_t i = 0; i < src->u.map.len; i++) {
            n->u.map.items[i].key = copy_tree(p, src->u.map.items[i].key);
            n->u.map.items[i].value = copy_tree(p, src->u.map.items[i].value);
            if (n->u.map.items[i].key == NULL || n->u.map.items[i].value == NULL)
                return NULL;
        }
    }
    return n;
}

static int push_entry(struct parse *p, struct doc_node *key, struct doc_node *value, unsigned line,
                      unsigned col)
{
    if (p->sp == p->stack_cap) {
        size_t cap = p->stack_cap ? p->stack_cap * 2 : 64;
        struct entry *s = realloc(p->stack, cap * sizeof(*s));
        if (s == NULL)
            return fail_nomem(p);
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[p->sp++] = (struct entry){key, value, line, col};
    return 0;
}

/* ---------------------------------------------------------------- keysets */

static void keyset_init(struct keyset *ks)
{
    ks->keys = ks->keys_inline;
    ks->hashes = ks->hashes_inline;
    ks->len = 0;
    ks->cap = KEYSET_LINEAR;
    ks->slots = NULL;
    ks->nslots = 0;
}

static void keyset_release(struct keyset *ks)
{
    if (ks->keys != ks->keys_inline)
        free(ks->keys);
    if (ks->hashes != ks->hashes_inline)
        free(ks->hashes);
    free(ks->slots);
    keyset_init(ks);
}

static bool key_eq(const struct doc_node *a, const struct doc_node *b)
{
    return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
}

static const struct doc_node *keyset_find(const struct keyset *ks, const struct doc_node *key,
                                          uint64_t h)
{
    if (ks->slots == NULL) {
        for (size_t i = 0; i < ks->len; i++)
            if (ks->hashes[i] == h && key_eq(ks->keys[i], key))
                return ks->keys[i];
        return NULL;
    }
    size_t mask = ks->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint32_t s = ks->slots[i];
        if (s == 0)
            return NULL;
        if (ks->hashes[s - 1] == h && key_eq(ks->keys[s - 1], key))
            return ks->keys[s - 1];
    }
}

static void keyset_slot(struct keyset *ks, size_t idx)
{
    size_t mask = ks->nslots - 1;
    size_t i = (size_t)ks->hashes[idx] & mask;
    while (ks->slots[i] != 0)
        i = (i + 1) & mask;
    ks->slots[i] = (uint32_t)(idx + 1);
}

static int keyset_rehash(struct keyset *ks, size_t nslots)
{
    uint32_t *slots = calloc(nslots, sizeof(*slots));
    if (slots == NULL)
        return RV_ENOMEM;
    free(ks->slots);
    ks->slots = slots;
    ks->nslots = nslots;
    for (size_t i = 0; i < ks->len; i++)
        keyset_slot(ks, i);
    return 0;
}

static int keyset_add(struct keyset *ks, const struct doc_node *key, uint64_t h)
{
    if (ks->len == ks->cap) {
        size_t cap = ks->cap * 2;
        bool inline_keys = ks->keys == ks->keys_inline;
        const struct doc_node **keys = realloc(inline_keys ? NULL : ks->keys, cap * sizeof(*keys));
        if (keys == NULL)
            return RV_ENOMEM;
        if (inline_keys)
            memcpy(keys, ks->keys_inline, sizeof(ks->keys_inline));
        ks->keys = keys;
        bool inline_hashes = ks->hashes == ks->hashes_inline;
        uint64_t *hashes = realloc(inline_hashes ? NULL : ks->hashes, cap * sizeof(*hashes));
        if (hashes == NULL)
            return RV_ENOMEM;
        if (inline_hashes)
            memcpy(hashes, ks->hashes_inline, sizeof(ks->hashes_inline));
        ks->hashes = hashes;
        ks->cap = cap;
    }
    ks->keys[ks->len] = key;
    ks->hashes[ks->len] = h;
    ks->len++;
    if (ks->slots == NULL)
        return ks->len >= KEYSET_LINEAR ? keyset_rehash(ks, 4 * KEYSET_LINEAR) : 0;
    if (ks->len * 2 > ks->nslots)
        return keyset_rehash(ks, ks->nslots * 2);
    keyset_slot(ks, ks->len - 1);
    return 0;
}

/* ---------------------------------------------------------------- scalars */

/* s (len bytes, which may hold a NUL from an escape) is exactly lit. */
static bool eq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static bool is_null(const char *s, size_t len)
{
    return len == 0 || eq(s, len, "~") || eq(s, len, "null") || eq(s, len, "Null") ||
           eq(s, len, "NULL");
}

/* 1 true, 0 false, -1 not a core-schema boolean. */
static int parse_bool(const char *s, size_t len)
{
    if (eq(s, len, "true") || eq(s, len, "True") || eq(s, len, "TRUE"))
        return 1;
    if (eq(s, len, "false") || eq(s, len, "False") || eq(s, len, "FALSE"))
        return 0;
    return -1;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Core-schema integer: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+.
 * 1 parsed, 0 not an integer, -1 an integer that does not fit in int64. */
static int parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    unsigned base = 10;
    bool neg = false, over = false;
    if (len > 2 && s[0] == '0' && s[1] == 'o') {
        base = 8;
        i = 2;
    } else if (len > 2 && s[0] == '0' && s[1] == 'x') {
        base = 16;
        i = 2;
    } else if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i >= len)
        return 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; i < len; i++) {
        int d = digit_value(s[i]);
        if (d < 0 || (unsigned)d >= base)
            return 0;
        if (!over && v > (limit - (unsigned)d) / base)
            over = true;
        if (!over)
            v = v * base + (unsigned)d;
    }
    if (over)
        return -1;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 1;
}

static size_t count_digits(const char *s, size_t len, size_t i)
{
    size_t n = 0;
    while (i + n < len && s[i + n] >= '0' && s[i + n] <= '9')
        n++;
    return n;
}

/* Core-schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?,
 * [-+]?\.(inf|Inf|INF), \.(nan|NaN|NAN). s must be NUL-terminated at len.
 * 1 parsed, 0 not a float, -1 a finite-looking number out of range. */
static int parse_float(const char *s, size_t len, double *out)
{
    size_t i = 0;
    if (len > 0 && (s[0] == '-' || s[0] == '+'))
        i = 1;
    const char *r = s + i;
    size_t rlen = len - i;
    if (eq(r, rlen, ".inf") || eq(r, rlen, ".Inf") || eq(r, rlen, ".INF")) {
        *out = s[0] == '-' ? -INFINITY : INFINITY;
        return 1;
    }
    if (eq(s, len, ".nan") || eq(s, len, ".NaN") || eq(s, len, ".NAN")) {
        *out = NAN;
        return 1;
    }
    size_t whole = count_digits(s, len, i), frac = 0;
    i += whole;
    if (i < len && s[i] == '.') {
        frac = count_digits(s, len, i + 1);
        i += 1 + frac;
    } else if (whole == 0) {
        return 0;
    }
    if (whole == 0 && frac == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t exp = count_digits(s, len, i);
        if (exp == 0)
            return 0;
        i += exp;
    }
    if (i != len || strlen(s) != len)
        return 0;
    double d = strtod(s, NULL);
    if (isinf(d))
        return -1;
    *out = d;
    return 1;
}

static int unsupported_tag(struct parse *p, const char *tag, unsigned line, unsigned col)
{
    struct quoted q;
    return fail(p, RV_EPARSE, line, col,
                "unsupported tag '%s'; remove it (only !!str, !!int, !!float, !!bool, !!null, "
                "!!map and !!seq are allowed)",
                quote_tag(&q, tag));
}

/* Give n (already positioned) its kind and value from the scalar text s
 * (NUL-terminated at len), honouring an explicit standard tag. */
static int resolve_scalar(struct parse *p, struct doc_node *n, char *s, size_t len, const char *tag,
                          bool plain)
{
    const char *t = NULL; /* a standard tag's name: "int", "str", ... */
    struct quoted q, qt;
    int64_t iv = 0;
    double fv = 0;

    if (tag != NULL && strcmp(tag, "!") != 0) {
        if (strncmp(tag, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) != 0)
            return unsupported_tag(p, tag, n->line, n->col);
        t = tag + strlen(YAML_TAG_PREFIX);
        if (strcmp(t, "map") == 0 || strcmp(t, "seq") == 0)
            return fail(p, RV_EPARSE, n->line, n->col,
                        "tag '%s' cannot be used on a scalar; remove it", quote_tag(&qt, tag));
        if (strcmp(t, "str") != 0 && strcmp(t, "int") != 0 && strcmp(t, "float") != 0 &&
            strcmp(t, "bool") != 0 && strcmp(t, "null") != 0)
            return unsupported_tag(p, tag, n->line, n->col);
    }
    n->kind = DOC_STRING;
    n->u.str.s = s;
    n->u.str.len = len;
    if ((t == NULL && (!plain || tag != NULL)) || (t != NULL && strcmp(t, "str") == 0))
        return 0;

    bool any = t == NULL;
    if ((any || strcmp(t, "null") == 0) && is_null(s, len)) {
        n->kind = DOC_NULL;
        return 0;
    }
    int b = parse_bool(s, len);
    if ((any || strcmp(t, "bool") == 0) && b >= 0) {
        n->kind = DOC_BOOL;
        n->u.b = b == 1;
        return 0;
    }
    bool want_float = !any && strcmp(t, "float") == 0;
    if (any || want_float || strcmp(t, "int") == 0) {
        int r = parse_int(s, len, &iv);
        if (r > 0) {
            if (want_float) {
                n->kind = DOC_FLOAT;
                n->u.f = (double)iv;
            } else {
                n->kind = DOC_INT;
                n->u.i = iv;
            }
            n->text = s;
            return 0;
        }
        if (r < 0 && !want_float)
            return fail(p, RV_EPARSE, n->line, n->col,
                        "integer '%s' does not fit in 64 bits; quote it if it is meant as a string",
                        quote(&q, s, len));
    }
    if (any || want_float) {
        int r = parse_float(s, len, &fv);
        if (r > 0) {
            n->kind = DOC_FLOAT;
            n->u.f = fv;
            n->text = s;
            return 0;
        }
        if (r < 0)
            return fail(p, RV_EPARSE, n->line, n->col,
                        "number '%s' is out of range for a 64-bit float; quote it if it is meant "
                        "as a string",
                        quote(&q, s, len));
    }
    if (any)
        return 0;
    return fail(p, RV_EPARSE, n->line, n->col,
                "'%s' is not a valid %s; fix the value or remove the tag", quote(&q, s, len),
                quote_tag(&qt, tag));
}

/* ---------------------------------------------------------------- YAML */

static unsigned mark_line(yaml_mark_t m)
{
    return (unsigned)(m.line + 1);
}

static unsigned mark_col(yaml_mark_t m)
{
    return (unsigned)(m.column + 1);
}

/* Byte offset where 0-based line `line` starts, or SIZE_MAX. */
static size_t line_offset(const struct parse *p, size_t line)
{
    size_t l = 0, i = 0;
    while (l < line) {
        if (i >= p->len)
            return SIZE_MAX;
        size_t brk = line_break(p->text, p->len, i, true);
        if (brk) {
            l++;
            i += brk;
        } else {
            i++;
        }
    }
    return i;
}

/* libyaml's messages about tabs are cryptic ("found character that cannot
 * start any token"). When it fails in the indentation of a line that holds a
 * tab, or right at a tab, find that tab. */
static bool find_tab(const struct parse *p, yaml_mark_t m, unsigned *line, unsigned *col)
{
    size_t start = line_offset(p, m.line);
    if (start == SIZE_MAX)
        return false;
    size_t i = start, tab = SIZE_MAX;
    while (i < p->len && (p->text[i] == ' ' || p->text[i] == '\t')) {
        if (p->text[i] == '\t' && tab == SIZE_MAX)
            tab = i;
        i++;
    }
    if (tab != SIZE_MAX && m.column <= i - start) {
        *line = mark_line(m);
        *col = (unsigned)(tab - start + 1);
        return true;
    }
    /* Walk m.column characters along the line. */
    i = start;
    for (size_t c = 0; c < m.column && i < p->len; c++) {
        if (line_break(p->text, p->len, i, true))
            return false;
        i++;
        while (i < p->len && ((unsigned char)p->text[i] & 0xc0) == 0x80)
            i++;
    }
    if (i < p->len && p->text[i] == '\t') {
        *line = mark_line(m);
        *col = mark_col(m);
        return true;
    }
    return false;
}

static const char *yaml_hint(const char *problem)
{
    static const struct {
        const char *problem;
        const char *hint;
    } hints[] = {
        {"did not find expected key", "check the indentation of this line"},
        {"did not find expected '-' indicator", "check the indentation of this line"},
        {"mapping values are not allowed in this context",
         "quote the value if it contains ': ', or check the indentation"},
        {"found character that cannot start any token", "quote the value"},
        {"found unexpected end of stream", "close the quote or bracket"},
        {"did not find expected ',' or ']'", "close the '[' or add the missing ','"},
        {"did not find expected ',' or '}'", "close the '{' or add the missing ','"},
        {"could not find expected ':'", "put ': ' after the key"},
        {"found undefined tag handle", "remove the tag"},
        {"did not find expected node content", "add the missing value or remove the indicator"},
        {"found unknown escape character", "write a backslash as '\\\\' or use single quotes"},
    };
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
        if (strcmp(problem, hints[i].problem) == 0)
            return hints[i].hint;
    return NULL;
}

static int yaml_error(struct parse *p)
{
    const yaml_parser_t *y = &p->parser;
    unsigned line, col;

    if (y->error == YAML_MEMORY_ERROR)
        return fail_nomem(p);
    const char *problem = y->problem ? y->problem : "syntax error";
    if (y->error == YAML_READER_ERROR) {
        text_pos(p->text, p->len, y->problem_offset, true, &line, &col);
        return fail(p, RV_EPARSE, line, col, "%s; save the file as UTF-8 text", problem);
    }
    if (find_tab(p, y->problem_mark, &line, &col))
        return fail(p, RV_EPARSE, line, col,
                    "tab character in indentation; YAML allows only spaces");
    line = mark_line(y->problem_mark);
    col = mark_col(y->problem_mark);
    const char *hint = yaml_hint(problem);
    if (y->context != NULL)
        return fail(p, RV_EPARSE, line, col, "%s (%s at line %u, column %u)%s%s", problem,
                    y->context, mark_line(y->context_mark), mark_col(y->context_mark),
                    hint ? "; " : "", hint ? hint : "");
    return fail(p, RV_EPARSE, line, col, "%s%s%s", problem, hint ? "; " : "", hint ? hint : "");
}

static int yaml_next(struct parse *p, yaml_event_t *ev)
{
    if (yaml_parser_parse(&p->parser, ev))
        return 0;
    return yaml_error(p);
}

static const struct anchor *find_anchor(const struct parse *p, const char *name, size_t len)
{
    uint64_t h = hash_bytes(name, len);
    for (size_t i = p->nanchors; i > 0; i--) {
        const struct anchor *a = &p->anchors[i - 1];
        if (a->hash == h && a->name_len == len && memcmp(a->name, name, len) == 0)
            return a;
    }
    return NULL;
}

static int add_anchor(struct parse *p, const yaml_char_t *name, const struct doc_node *n,
                      const char *text, size_t text_len)
{
    if (p->anchors_total >= RV_DOC_ANCHORS_MAX)
        return fail(p, RV_ELIMIT, n->line, n->col,
                    "too many anchors: more than %d in one file; use fewer '&' anchors",
                    RV_DOC_ANCHORS_MAX);
    p->anchors_total++;
    if (p->nanchors == p->anchors_cap) {
        size_t cap = p->anchors_cap ? p->anchors_cap * 2 : 16;
        struct anchor *a = realloc(p->anchors, cap * sizeof(*a));
        if (a == NULL)
            return fail_nomem(p);
        p->anchors = a;
        p->anchors_cap = cap;
    }
    struct anchor *a = &p->anchors[p->nanchors];
    a->name_len = strlen((const char *)name);
    a->name = arena_strndup(p->arena, (const char *)name, a->name_len);
    if (a->name == NULL)
        return fail_nomem(p);
    a->hash = hash_bytes(a->name, a->name_len);
    a->node = n;
    a->text = text;
    a->text_len = text_len;
    measure(n, &a->size, &a->height);
    p->nanchors++;
    return 0;
}

/* Count an alias use and find its anchor. */
static int use_alias(struct parse *p, const yaml_event_t *ev, const struct anchor **out)
{
    unsigned line = mark_line(ev->start_mark), col = mark_col(ev->start_mark);
    const char *name = (const char *)ev->data.alias.anchor;
    struct quoted q;
    if (p->aliases >= RV_DOC_ALIASES_MAX)
        return fail(p, RV_ELIMIT, line, col,
                    "too many aliases: more than %d in one file; use fewer '*' references",
                    RV_DOC_ALIASES_MAX);
    p->aliases++;
    *out = find_anchor(p, name, strlen(name));
    if (*out == NULL) {
        quote(&q, name, strlen(name));
        return fail(p, RV_EPARSE, line, col,
                    "unknown anchor '%s'; define it with '&%s' before this alias", q.s, q.s);
    }
    return 0;
}

static int parse_node(struct parse *p, const yaml_event_t *ev, unsigned depth,
                      struct doc_node **out);

/* Read the next event and build the node it starts. */
static int parse_child(struct parse *p, unsigned depth, struct doc_node **out)
{
    yaml_event_t ev;
    int rc = yaml_next(p, &ev);
    if (rc)
        return rc;
    rc = parse_node(p, &ev, depth, out);
    yaml_event_delete(&ev);
    return rc;
}

/* Size and content checks shared by values and keys. A NUL written as an
 * escape ("\0") is refused like a raw one: C strings downstream (passwords,
 * names) would silently end at it. */
static int check_scalar(struct parse *p, const yaml_event_t *ev, unsigned line, unsigned col)
{
    size_t len = ev->data.scalar.length;
    if (len > RV_DOC_SCALAR_MAX)
        return fail(p, RV_ELIMIT, line, col,
                    "value is %zu bytes, past the limit of %d bytes for one value; shorten it", len,
                    RV_DOC_SCALAR_MAX);
    if (memchr(ev->data.scalar.value, 0, len) != NULL)
        return fail(p, RV_EPARSE, line, col,
                    "NUL character (\\0) in a value is not allowed; remove it");
    return 0;
}

static int parse_scalar(struct parse *p, const yaml_event_t *ev, struct doc_node **out)
{
    unsigned line = mark_line(ev->start_mark), col = mark_col(ev->start_mark);
    size_t len = ev->data.scalar.length;
    struct doc_node *n = NULL;
    int rc;

    rc = check_scalar(p, ev, line, col);
    if (rc)
        return rc;
    rc = new_node(p, &n, DOC_STRING, line, col);
    if (rc)
        return rc;
    char *s = arena_strndup(p->arena, (const char *)ev->data.scalar.value, len);
    if (s == NULL)
        return fail_nomem(p);
    rc = resolve_scalar(p, n, s, len, (const char *)ev->data.scalar.tag,
                        ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
    if (rc)
        return rc;
    if (ev->data.scalar.anchor != NULL) {
        rc = add_anchor(p, ev->data.scalar.anchor, n, s, len);
        if (rc)
            return rc;
    }
    *out = n;
    return 0;
}

static int depth_exceeded(struct parse *p, unsigned line, unsigned col)
{
    return fail(p, RV_ELIMIT, line, col, "nesting deeper than %d levels; flatten the document",
                RV_DOC_DEPTH_MAX);
}

static int parse_alias(struct parse *p, const yaml_event_t *ev, unsigned depth,
                       struct doc_node **out)
{
    unsigned line = mark_line(ev->start_mark), col = mark_col(ev->start_mark);
    const struct anchor *a = NULL;
    struct quoted q;
    int rc = use_alias(p, ev, &a);
    if (rc)
        return rc;
    if (depth + a->height > RV_DOC_DEPTH_MAX)
        return fail(p, RV_ELIMIT, line, col,
                    "alias '*%s' nests the document deeper than %d levels; flatten the document",
                    quote(&q, a->name, a->name_len), RV_DOC_DEPTH_MAX);
    if (a->size > RV_DOC_NODES_MAX - p->nodes)
        return fail(p, RV_ELIMIT, line, col,
                    "too many nodes: alias '*%s' expands to %zu more, past the limit of %d in one "
                    "file; use fewer or smaller aliases",
                    quote(&q, a->name, a->name_len), a->size, RV_DOC_NODES_MAX);
    p->nodes += a->size;
    struct doc_node *n = copy_tree(p, a->node);
    if (n == NULL)
        return fail_nomem(p);
    n->line = line;
    n->col = col;
    *out = n;
    return 0;
}

static int check_collection_tag(struct parse *p, const yaml_char_t *utag, bool map, unsigned line,
                                unsigned col)
{
    const char *tag = (const char *)utag;
    struct quoted q;
    if (tag == NULL || strcmp(tag, "!") == 0)
        return 0;
    if (strcmp(tag, map ? YAML_TAG_PREFIX "map" : YAML_TAG_PREFIX "seq") == 0)
        return 0;
    static const char *const standard[] = {"map", "seq", "str", "int", "float", "bool", "null"};
    size_t plen = strlen(YAML_TAG_PREFIX);
    if (strncmp(tag, YAML_TAG_PREFIX, plen) == 0)
        for (size_t i = 0; i < sizeof(standard) / sizeof(standard[0]); i++)
            if (strcmp(tag + plen, standard[i]) == 0)
                return fail(p, RV_EPARSE, line, col, "tag '%s' cannot be used on a %s; remove it",
                            quote_tag(&q, tag), map ? "mapping" : "sequence");
    return unsupported_tag(p, tag, line, col);
}

static int parse_seq(struct parse *p, const yaml_event_t *ev, unsigned depth, struct doc_node **out)
{
    unsigned line = mark_line(ev->start_mark), col = mark_col(ev->start_mark);
    struct doc_node *n = NULL;
    size_t mark = p->sp;
    int rc;

    if (depth + 1 > RV_DOC_DEPTH_MAX)
        return depth_exceeded(p, line, col);
    rc = check_collection_tag(p, ev->data.sequence_start.tag, false, line, col);
    if (rc)
        return rc;
    rc = new_node(p, &n, DOC_SEQ, line, col);
    if (rc)
        return rc;
    for (;;) {
        yaml_event_t child;
        struct doc_node *c = NULL;
        rc = yaml_next(p, &child);
        if (rc)
            return rc;
        if (child.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&child);
            break;
        }
        rc = parse_node(p, &child, depth + 1, &c);
        yaml_event_delete(&child);
        if (rc)
            return rc;
        rc = push_entry(p, NULL, c, 0, 0);
        if (rc)
            return rc;
    }
    size_t len = p->sp - mark;
    if (len) {
        n->u.seq.items = arena_alloc(p->arena, len * sizeof(*n->u.seq.items));
        if (n->u.seq.items == NULL)
            return fail_nomem(p);
        for (size_t i = 0; i < len; i++)
            n->u.seq.items[i] = p->stack[mark + i].value;
    }
    n->u.seq.len = len;
    p->sp = mark;
    if (ev->data.sequence_start.anchor != NULL) {
        rc = add_anchor(p, ev->data.sequence_start.anchor, n, NULL, 0);
        if (rc)
            return rc;
    }
    *out = n;
    return 0;
}

static bool is_merge_key(const yaml_event_t *ev)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           ev->data.scalar.length == 2 && memcmp(ev->data.scalar.value, "<<", 2) == 0 &&
           (tag == NULL || strcmp(tag, YAML_TAG_PREFIX "merge") == 0);
}

/* A mapping key: a scalar (or an alias of one) becomes a DOC_STRING with the
 * scalar's text. */
static int parse_key(struct parse *p, const yaml_event_t *ev, struct doc_node **out)
{
    unsigned line = mark_line(ev->start_mark), col = mark_col(ev->start_mark);
    const char *text;
    size_t len;
    struct quoted q;
    int rc;

    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        len = ev->data.scalar.length;
        rc = check_scalar(p, ev, line, col);
        if (rc)
            return rc;
        char *s = arena_strndup(p->arena, (const char *)ev->data.scalar.value, len);
        if (s == NULL)
            return fail_nomem(p);
        text = s;
        if (ev->data.scalar.tag != NULL || ev->data.scalar.anchor != NULL) {
            /* Check the tag; an anchored key keeps its resolved value for
             * aliases used as values. */
            struct doc_node r = {.line = line, .col = col};
            rc = resolve_scalar(p, &r, s, len, (const char *)ev->data.scalar.tag,
                                ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
            if (rc)
                return rc;
            if (ev->data.scalar.anchor != NULL) {
                struct doc_node *rn = arena_alloc(p->arena, sizeof(*rn));
                if (rn == NULL)
                    return fail_nomem(p);
                *rn = r;
                rc = add_anchor(p, ev->data.scalar.anchor, rn, s, len);
                if (rc)
                    return rc;
            }
        }
        break;
    }
    case YAML_ALIAS_EVENT: {
        const struct anchor *a = NULL;
        rc = use_alias(p, ev, &a);
        if (rc)
            return rc;
        if (a->text == NULL)
            return fail(p, RV_EPARSE, line, col,
                        "mapping key must be a scalar, but alias '*%s' is a %s; use a plain "
                        "string as the key",
                        quote(&q, a->name, a->name_len),
                        a->node->kind == DOC_MAP ? "mapping" : "sequence");
        text = a->text;
        len = a->text_len;
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return fail(p, RV_EPARSE, line, col,
                    "mapping key must be a scalar, not a %s; use a plain string as the key",
                    ev->type == YAML_MAPPING_START_EVENT ? "mapping" : "sequence");
    default:
        return fail(p, RV_EINTERNAL, line, col, "internal error: unexpected YAML event %d as a key",
                    (int)ev->type);
    }
    struct doc_node *k = NULL;
    rc = new_node(p, &k, DOC_STRING, line, col);
    if (rc)
        return rc;
    k->u.str.s = (char *)text;
    k->u.str.len = len;
    *out = k;
    return 0;
}

static int too_many_keys(struct parse *p, unsigned line, unsigned col, const char *after)
{
    return fail(p, RV_ELIMIT, line, col, "more than %d keys in one mapping%s; split it",
                RV_DOC_MAP_KEYS_MAX, after);
}

/* Items of a mapping built from the entries stack[mark..sp): explicit keys in
 * document order, merged keys where their '<<' stood. Explicit keys win over
 * merged ones; among merged mappings the earlier wins. */
static int apply_merges(struct parse *p, struct doc_node *n, size_t mark, struct keyset *ks,
                        size_t nkeys)
{
    size_t total = 0, added = 0, cnt = 0;
    for (size_t i = mark; i < p->sp; i++) {
        const struct entry *e = &p->stack[i];
        const struct doc_node *v = e->value;
        if (e->key != NULL) {
            total++;
        } else if (v->kind == DOC_MAP) {
            total += v->u.map.len;
        } else if (v->kind == DOC_SEQ) {
            for (size_t j = 0; j < v->u.seq.len; j++) {
                if (v->u.seq.items[j]->kind != DOC_MAP)
                    return fail(p, RV_EPARSE, v->u.seq.items[j]->line, v->u.seq.items[j]->col,
                                "merge key '<<' needs mappings, but this item is of type '%s'",
                                doc_kind_name(v->u.seq.items[j]->kind));
                total += v->u.seq.items[j]->u.map.len;
            }
        } else {
            return fail(p, RV_EPARSE, e->line, e->col,
                        "merge key '<<' needs a mapping or a list of mappings, not a value of "
                        "type '%s'",
                        doc_kind_name(v->kind));
        }
    }
    struct doc_pair *items = NULL;
    if (total) {
        items = arena_alloc(p->arena, total * sizeof(*items));
        if (items == NULL)
            return fail_nomem(p);
    }
    for (size_t i = mark; i < p->sp; i++) {
        const struct entry *e = &p->stack[i];
        if (e->key != NULL) {
            items[cnt++] = (struct doc_pair){e->key, e->value};
            continue;
        }
        size_t nsrc = e->value->kind == DOC_MAP ? 1 : e->value->u.seq.len;
        for (size_t j = 0; j < nsrc; j++) {
            const struct doc_node *m =
                e->value->kind == DOC_MAP ? e->value : e->value->u.seq.items[j];
            for (size_t k = 0; k < m->u.map.len; k++) {
                const struct doc_pair *q = &m->u.map.items[k];
                uint64_t h = hash_bytes(q->key->u.str.s, q->key->u.str.len);
                if (keyset_find(ks, q->key, h) != NULL)
                    continue;
                if (nkeys + added >= RV_DOC_MAP_KEYS_MAX)
                    return too_many_keys(p, e->line, e->col, " after merging '<<'");
                if (keyset_add(ks, q->key, h))
                    return fail_nomem(p);
                added++;
                items[cnt++] = *q;
            }
        }
    }
    n->u.map.items = items;
    n->u.map.len = cnt;
    return 0;
}

static int parse_map(struct parse *p, const yaml_event_t *ev, unsigned depth, struct doc_node **out)
{
    unsigned line = mark_line(ev->start_mark), col = mark_col(ev->start_mark);
    struct doc_node *n = NULL;
    struct keyset ks;
    size_t mark = p->sp, nkeys = 0;
    unsigned merge_line = 0;
    struct quoted q;
    int rc;

    keyset_init(&ks);
    if (depth + 1 > RV_DOC_DEPTH_MAX)
        return depth_exceeded(p, line, col);
    rc = check_collection_tag(p, ev->data.mapping_start.tag, true, line, col);
    if (rc)
        return rc;
    rc = new_node(p, &n, DOC_MAP, line, col);
    if (rc)
        return rc;
    for (;;) {
        yaml_event_t kev;
        struct doc_node *k = NULL, *v = NULL;
        rc = yaml_next(p, &kev);
        if (rc)
            goto out;
        unsigned kline = mark_line(kev.start_mark), kcol = mark_col(kev.start_mark);
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        if (is_merge_key(&kev)) {
            yaml_event_delete(&kev);
            if (merge_line) {
                rc = fail(p, RV_EPARSE, kline, kcol,
                          "duplicate key '<<' (first defined at line %u)", merge_line);
                goto out;
            }
            merge_line = kline;
            rc = parse_child(p, depth + 1, &v);
            if (rc == 0)
                rc = push_entry(p, NULL, v, kline, kcol);
            if (rc)
                goto out;
            continue;
        }
        rc = parse_key(p, &kev, &k);
        yaml_event_delete(&kev);
        if (rc)
            goto out;
        if (++nkeys > RV_DOC_MAP_KEYS_MAX) {
            rc = too_many_keys(p, kline, kcol, "");
            goto out;
        }
        uint64_t h = hash_bytes(k->u.str.s, k->u.str.len);
        const struct doc_node *first = keyset_find(&ks, k, h);
        if (first != NULL) {
            rc = fail(p, RV_EPARSE, kline, kcol, "duplicate key '%s' (first defined at line %u)",
                      quote(&q, k->u.str.s, k->u.str.len), first->line);
            goto out;
        }
        if (keyset_add(&ks, k, h)) {
            rc = fail_nomem(p);
            goto out;
        }
        rc = parse_child(p, depth + 1, &v);
        if (rc == 0)
            rc = push_entry(p, k, v, 0, 0);
        if (rc)
            goto out;
    }
    if (merge_line) {
        rc = apply_merges(p, n, mark, &ks, nkeys);
        if (rc)
            goto out;
    } else if (nkeys) {
        n->u.map.items = arena_alloc(p->arena, nkeys * sizeof(*n->u.map.items));
        if (n->u.map.items == NULL) {
            rc = fail_nomem(p);
            goto out;
        }
        for (size_t i = 0; i < nkeys; i++)
            n->u.map.items[i] = (struct doc_pair){p->stack[mark + i].key, p->stack[mark + i].value};
        n->u.map.len = nkeys;
    }
    p->sp = mark;
    if (ev->data.mapping_start.anchor != NULL) {
        rc = add_anchor(p, ev->data.mapping_start.anchor, n, NULL, 0);
        if (rc)
            goto out;
    }
    *out = n;
out:
    keyset_release(&ks);
    return rc;
}

static int parse_node(struct parse *p, const yaml_event_t *ev, unsigned depth,
                      struct doc_node **out)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return parse_scalar(p, ev, out);
    case YAML_ALIAS_EVENT:
        return parse_alias(p, ev, depth, out);
    case YAML_SEQUENCE_START_EVENT:
        return parse_seq(p, ev, depth, out);
    case YAML_MAPPING_START_EVENT:
        return parse_map(p, ev, depth, out);
    default:
        return fail(p, RV_EINTERNAL, mark_line(ev->start_mark), mark_col(ev->start_mark),
                    "internal error: unexpected YAML event %d", (int)ev->type);
    }
}

static int parse_yaml(struct parse *p, struct doc_file *f)
{
    struct doc_node **docs = NULL;
    size_t ndocs = 0, cap = 0;
    yaml_event_t ev;
    int rc;

    if (!yaml_parser_initialize(&p->parser))
        return fail_nomem(p);
    yaml_parser_set_input_string(&p->parser, (const unsigned char *)p->text, p->len);
    yaml_parser_set_encoding(&p->parser, YAML_UTF8_ENCODING);

    rc = yaml_next(p, &ev); /* STREAM-START */
    if (rc)
        goto out;
    yaml_event_delete(&ev);
    for (;;) {
        struct doc_node *root = NULL;
        rc = yaml_next(p, &ev);
        if (rc)
            goto out;
        yaml_event_type_t type = ev.type;
        unsigned line = mark_line(ev.start_mark), col = mark_col(ev.start_mark);
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT)
            break;
        if (type != YAML_DOCUMENT_START_EVENT) {
            rc = fail(p, RV_EINTERNAL, line, col, "internal error: unexpected YAML event %d",
                      (int)type);
            goto out;
        }
        if (ndocs >= RV_DOC_DOCS_MAX) {
            rc = fail(p, RV_ELIMIT, line, col,
                      "more than %d documents in one file; split it into several files",
                      RV_DOC_DOCS_MAX);
            goto out;
        }
        p->nanchors = 0; /* anchors do not cross documents */
        rc = parse_child(p, 0, &root);
        if (rc)
            goto out;
        rc = yaml_next(p, &ev); /* DOCUMENT-END */
        if (rc)
            goto out;
        yaml_event_delete(&ev);
        if (ndocs == cap) {
            cap = cap ? cap * 2 : 4;
            struct doc_node **d = realloc(docs, cap * sizeof(*d));
            if (d == NULL) {
                rc = fail_nomem(p);
                goto out;
            }
            docs = d;
        }
        docs[ndocs++] = root;
    }
    if (ndocs) {
        f->docs = arena_alloc(p->arena, ndocs * sizeof(*f->docs));
        if (f->docs == NULL) {
            rc = fail_nomem(p);
            goto out;
        }
        memcpy(f->docs, docs, ndocs * sizeof(*docs));
    }
    f->ndocs = ndocs;
out:
    free(docs);
    yaml_parser_delete(&p->parser);
    return rc;
}

/* ---------------------------------------------------------------- JSON */

static void js_advance(struct parse *p)
{
    unsigned char c = (unsigned char)p->text[p->pos++];
    if (c == '\n') {
        p->line++;
        p->col = 1;
    } else if ((c & 0xc0) != 0x80) {
        p->col++;
    }
}

static void js_ws(struct parse *p)
{
    while (p->pos < p->len && strchr(" \t\r\n", p->text[p->pos]) != NULL)
        js_advance(p);
}

/* The scan follows text jansson has accepted, so losing the way is a bug in
 * this file, reported as such rather than asserted. */
static int js_lost(struct parse *p)
{
    return fail(p, RV_EINTERNAL, p->line, p->col,
                "internal error: lost track of JSON positions here; please report this file");
}

static int js_expect(struct parse *p, char c)
{
    js_ws(p);
    if (p->pos >= p->len || p->text[p->pos] != c)
        return js_lost(p);
    js_advance(p);
    return 0;
}

static int js_skip_string(struct parse *p)
{
    if (p->pos >= p->len || p->text[p->pos] != '"')
        return js_lost(p);
    js_advance(p);
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        js_advance(p);
        if (c == '"')
            return 0;
        if (c == '\\') {
            if (p->pos >= p->len)
                break;
            js_advance(p);
        }
    }
    return js_lost(p);
}

/* A number or true/false/null. */
static int js_skip_atom(struct parse *p)
{
    size_t start = p->pos;
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '+' || c == '-' ||
              c == '.' || c == 'E'))
            break;
        js_advance(p);
    }
    return p->pos > start ? 0 : js_lost(p);
}

static int json_string_node(struct parse *p, const char *s, size_t len, struct doc_node **out)
{
    struct doc_node *n = NULL;
    if (len > RV_DOC_SCALAR_MAX)
        return fail(p, RV_ELIMIT, p->line, p->col,
                    "value is %zu bytes, past the limit of %d bytes for one value; shorten it", len,
                    RV_DOC_SCALAR_MAX);
    int rc = new_node(p, &n, DOC_STRING, p->line, p->col);
    if (rc)
        return rc;
    n->u.str.s = arena_strndup(p->arena, s, len);
    if (n->u.str.s == NULL)
        return fail_nomem(p);
    n->u.str.len = len;
    *out = n;
    return js_skip_string(p);
}

static int json_build(struct parse *p, json_t *v, unsigned depth, struct doc_node **out);

static int json_object_build(struct parse *p, json_t *v, unsigned depth, struct doc_node *n)
{
    size_t cnt = json_object_size(v), i = 0;
    int rc = js_expect(p, '{');
    if (rc)
        return rc;
    if (cnt) {
        n->u.map.items = arena_alloc(p->arena, cnt * sizeof(*n->u.map.items));
        if (n->u.map.items == NULL)
            return fail_nomem(p);
    }
    /* jansson keeps keys in document order, which the scan relies on. */
    for (void *it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it), i++) {
        if (i > 0) {
            rc = js_expect(p, ',');
            if (rc)
                return rc;
        }
        js_ws(p);
        if (i >= RV_DOC_MAP_KEYS_MAX)
            return too_many_keys(p, p->line, p->col, "");
        if (i >= cnt)
            return js_lost(p);
        struct doc_node *k = NULL, *val = NULL;
        rc = json_string_node(p, json_object_iter_key(it), json_object_iter_key_len(it), &k);
        if (rc == 0)
            rc = js_expect(p, ':');
        if (rc == 0)
            rc = json_build(p, json_object_iter_value(it), depth + 1, &val);
        if (rc)
            return rc;
        n->u.map.items[i] = (struct doc_pair){k, val};
    }
    if (i != cnt)
        return js_lost(p);
    n->u.map.len = cnt;
    return js_expect(p, '}');
}

static int json_array_build(struct parse *p, json_t *v, unsigned depth, struct doc_node *n)
{
    size_t cnt = json_array_size(v);
    int rc = js_expect(p, '[');
    if (rc)
        return rc;
    if (cnt) {
        n->u.seq.items = arena_alloc(p->arena, cnt * sizeof(*n->u.seq.items));
        if (n->u.seq.items == NULL)
            return fail_nomem(p);
    }
    for (size_t i = 0; i < cnt; i++) {
        if (i > 0) {
            rc = js_expect(p, ',');
            if (rc)
                return rc;
        }
        rc = json_build(p, json_array_get(v, i), depth + 1, &n->u.seq.items[i]);
        if (rc)
            return rc;
    }
    n->u.seq.len = cnt;
    return js_expect(p, ']');
}

static int json_build(struct parse *p, json_t *v, unsigned depth, struct doc_node **out)
{
    struct doc_node *n = NULL;
    int rc;

    js_ws(p);
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY: {
        bool obj = json_typeof(v) == JSON_OBJECT;
        if (depth + 1 > RV_DOC_DEPTH_MAX)
            return depth_exceeded(p, p->line, p->col);
        rc = new_node(p, &n, obj ? DOC_MAP : DOC_SEQ, p->line, p->col);
        if (rc)
            return rc;
        rc = obj ? json_object_build(p, v, depth, n) : json_array_build(p, v, depth, n);
        if (rc)
            return rc;
        *out = n;
        return 0;
    }
    case JSON_STRING:
        return json_string_node(p, json_string_value(v), json_string_length(v), out);
    case JSON_INTEGER:
        rc = new_node(p, &n, DOC_INT, p->line, p->col);
        if (rc)
            return rc;
        n->u.i = (int64_t)json_integer_value(v);
        break;
    case JSON_REAL:
        rc = new_node(p, &n, DOC_FLOAT, p->line, p->col);
        if (rc)
            return rc;
        n->u.f = json_real_value(v);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        rc = new_node(p, &n, DOC_BOOL, p->line, p->col);
        if (rc)
            return rc;
        n->u.b = json_is_true(v);
        break;
    case JSON_NULL:
    default:
        rc = new_node(p, &n, DOC_NULL, p->line, p->col);
        if (rc)
            return rc;
        break;
    }
    size_t start = p->pos;
    rc = js_skip_atom(p);
    if (rc)
        return rc;
    if (n->kind == DOC_INT || n->kind == DOC_FLOAT) {
        n->text = arena_strndup(p->arena, p->text + start, p->pos - start);
        if (n->text == NULL)
            return fail_nomem(p);
    }
    *out = n;
    return 0;
}

/* Where the (RV_DOC_DEPTH_MAX + 1)-th nested '[' or '{' opens. */
static void json_deep_pos(struct parse *p, unsigned *line, unsigned *col)
{
    size_t depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < p->len; i++) {
        char c = p->text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > RV_DOC_DEPTH_MAX) {
                text_pos(p->text, p->len, i, false, line, col);
                return;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    *line = 0;
    *col = 0;
}

static bool json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Offset just past the JSON value or string starting at i (the text before
 * the error is known to be well formed). */
static size_t json_skip_value(const char *t, size_t len, size_t i)
{
    size_t depth = 0;
    bool in_str = false;
    for (; i < len; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = false;
                if (depth == 0)
                    return i + 1;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i; /* the end of the enclosing container */
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && (c == ',' || c == ':' || json_ws(c))) {
            return i;
        }
    }
    return len;
}

/* The JSON string token at t[i..], decoded (NULL if it is not one);
 * json_decref() it. */
static json_t *json_token_string(const char *t, size_t len, size_t i)
{
    size_t end = json_skip_value(t, len, i);
    json_error_t e;
    if (i >= len || t[i] != '"')
        return NULL;
    json_t *v = json_loadb(t + i, end - i, JSON_DECODE_ANY, &e);
    if (v != NULL && !json_is_string(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* For a duplicate key whose second occurrence starts at dup: the line of
 * the first, found by walking the text to the object holding dup and then
 * along its members. 0 when it cannot be found. */
static unsigned json_first_key_line(const struct parse *p, size_t dup)
{
    size_t *stack = NULL, sp = 0, cap = 0, obj = SIZE_MAX;
    bool in_str = false;
    unsigned line = 0, col;
    json_t *want = json_token_string(p->text, p->len, dup);

    if (want == NULL)
        return 0;
    for (size_t i = 0; i < dup; i++) {
        char c = p->text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (sp == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                size_t *ns = realloc(stack, ncap * sizeof(*ns));
                if (ns == NULL)
                    goto out;
                stack = ns;
                cap = ncap;
            }
            stack[sp++] = i;
        } else if ((c == '}' || c == ']') && sp > 0) {
            sp--;
        }
    }
    if (sp == 0 || p->text[stack[sp - 1]] != '{')
        goto out;
    obj = stack[sp - 1];
    for (size_t i = obj + 1; i < dup;) {
        while (i < dup && (json_ws(p->text[i]) || p->text[i] == ','))
            i++;
        if (i >= dup || p->text[i] != '"')
            break;
        json_t *key = json_token_string(p->text, p->len, i);
        bool same = key != NULL && json_equal(key, want);
        json_decref(key);
        if (same) {
            text_pos(p->text, p->len, i, false, &line, &col);
            break;
        }
        i = json_skip_value(p->text, p->len, i);
        while (i < dup && (json_ws(p->text[i]) || p->text[i] == ':'))
            i++;
        i = json_skip_value(p->text, p->len, i);
    }
out:
    free(stack);
    json_decref(want);
    return line;
}

/* jansson reports the column of a token's last character; point at its
 * first, found from the "near '<token>'" part of the message when it can.
 * Two mistakes get more help than jansson's words: a duplicate key says
 * where the key was first defined, as for YAML, and a value where a '}' or
 * ']' was expected asks whether the ',' before it is missing, at the end of
 * the value before it. */
static int json_error(struct parse *p, const json_error_t *err)
{
    size_t pos = err->position < 0 ? 0 : (size_t)err->position;
    size_t start = pos;
    unsigned line, col;
    const char *tok = NULL;

    if (strncmp(err->text, "maximum parsing depth reached", 29) == 0) {
        json_deep_pos(p, &line, &col);
        return depth_exceeded(p, line, col);
    }
    if (pos > p->len)
        pos = start = p->len;
    const char *near = strstr(err->text, " near '");
    if (near != NULL) {
        size_t tl;
        tok = near + 7;
        tl = strlen(tok);
        if (tl > 0 && tok[tl - 1] == '\'')
            tl--;
        if (tl <= pos && memcmp(p->text + pos - tl, tok, tl) == 0)
            start = pos - tl;
        else if (pos > 0)
            start = pos - 1;
    } else if (strstr(err->text, "end of file") == NULL && pos > 0) {
        start = pos - 1;
    }
    text_pos(p->text, p->len, start, false, &line, &col);
    if (strncmp(err->text, "\\u0000 is not allowed", 21) == 0)
        return fail(p, RV_EPARSE, line, col,
                    "NUL character (\\u0000) in a string is not allowed; remove it");
    if (strncmp(err->text, "duplicate object key", 20) == 0) {
        struct quoted q;
        unsigned first = json_first_key_line(p, start);
        json_t *key = json_token_string(p->text, p->len, start);
        int rc;
        if (key == NULL)
            rc = fail(p, RV_EPARSE, line, col, "%s; each key may appear only once in an object",
                      err->text);
        else if (first == 0)
            rc = fail(p, RV_EPARSE, line, col,
                      "duplicate key '%s'; each key may appear only once in an object",
                      quote(&q, json_string_value(key), json_string_length(key)));
        else
            rc = fail(p, RV_EPARSE, line, col, "duplicate key '%s' (first defined at line %u)",
                      quote(&q, json_string_value(key), json_string_length(key)), first);
        json_decref(key);
        return rc;
    }
    bool close_expected = strncmp(err->text, "'}' expected near '", 19) == 0 ||
                          strncmp(err->text, "']' expected near '", 19) == 0;
    if (close_expected && tok != NULL && start < p->len && start > 0 &&
        strchr("\"{[-0123456789tfn", p->text[start]) != NULL) {
        /* a value where the container should end: most likely a ',' is
         * missing after the value before it */
        size_t prev = start;
        unsigned pline, pcol;
        while (prev > 0 && json_ws(p->text[prev - 1]))
            prev--;
        text_pos(p->text, p->len, prev, false, &pline, &pcol);
        if (pline < line)
            return fail(p, RV_EPARSE, pline, pcol,
                        "%s (line %u); is a ',' missing at the end of this line?", err->text, line);
        return fail(p, RV_EPARSE, line, col, "%s; is a ',' missing before it?", err->text);
    }
    return fail(p, RV_EPARSE, line, col, "%s", err->text);
}

static int parse_json(struct parse *p, struct doc_file *f)
{
    json_error_t err;
    struct doc_node *root = NULL;
    int rc;

    json_t *v = json_loadb(p->text, p->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL)
        return json_error(p, &err);
    p->pos = 0;
    p->line = 1;
    p->col = 1;
    rc = json_build(p, v, 0, &root);
    if (rc)
        goto out;
    js_ws(p);
    if (p->pos != p->len) {
        rc = js_lost(p);
        goto out;
    }
    f->docs = arena_alloc(p->arena, sizeof(*f->docs));
    if (f->docs == NULL) {
        rc = fail_nomem(p);
        goto out;
    }
    f->docs[0] = root;
    f->ndocs = 1;
out:
    json_decref(v);
    return rc;
}

/* ---------------------------------------------------------------- API */

int doc_parse(struct doc_file **out, enum doc_format format, const char *path, const char *data,
              size_t len, struct diag_list *diags)
{
    struct parse p;
    struct arena *arena = NULL;
    struct doc_file *f = NULL;
    int rc;

    memset(&p, 0, sizeof(p));
    *out = NULL;
    p.path = path != NULL ? path : "";
    p.diags = diags;
    if (len > RV_SPEC_FILE_MAX) {
        rc = fail(&p, RV_ELIMIT, 0, 0,
                  "file is %zu bytes, past the limit of %d bytes; split it into smaller files", len,
                  RV_SPEC_FILE_MAX);
        goto out;
    }
    if (data == NULL && len > 0) {
        rc = fail(&p, RV_EINVAL, 0, 0, "internal error: no data given for %zu bytes", len);
        goto out;
    }
    if (data == NULL)
        data = "";
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) {
        data += 3;
        len -= 3;
    }
    p.text = data;
    p.len = len;
    rc = check_text(&p, format != DOC_FORMAT_JSON);
    if (rc)
        goto out;

    arena = calloc(1, sizeof(*arena));
    if (arena == NULL) {
        rc = fail_nomem(&p);
        goto out;
    }
    p.arena = arena;
    f = arena_alloc(arena, sizeof(*f));
    if (f == NULL) {
        rc = fail_nomem(&p);
        goto out;
    }
    memset(f, 0, sizeof(*f));
    f->arena = arena;
    f->path = arena_strndup(arena, p.path, strlen(p.path));
    if (f->path == NULL) {
        rc = fail_nomem(&p);
        goto out;
    }
    rc = format == DOC_FORMAT_JSON ? parse_json(&p, f) : parse_yaml(&p, f);
out:
    free(p.anchors);
    free(p.stack);
    if (rc) {
        arena_destroy(arena);
        return rc;
    }
    *out = f;
    return 0;
}

static bool has_json_suffix(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".json") == 0;
}

static int io_fail(struct diag_list *diags, const char *shown, int err)
{
    char buf[128], msg[128];
    snprintf(msg, sizeof(msg), "%s", strerror_r(err, buf, sizeof(buf)));
    if (msg[0] >= 'A' && msg[0] <= 'Z')
        msg[0] = (char)(msg[0] - 'A' + 'a');
    if (diags != NULL)
        diag_add(diags, DIAG_ERROR, "", 0, 0, "", "cannot read '%s': %s", shown, msg);
    return RV_EIO;
}

int doc_load(struct doc_file **out, const char *fs_path, const char *display_path,
             struct diag_list *diags)
{
    const char *shown = display_path != NULL ? display_path : fs_path;
    char *buf = NULL;
    size_t len = 0, cap;
    struct stat st;
    int fd, rc;

    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    fd = open(fs_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return io_fail(diags, shown, errno);
    if (fstat(fd, &st) != 0) {
        rc = io_fail(diags, shown, errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        if (diags != NULL)
            diag_add(diags, DIAG_ERROR, "", 0, 0, "", "cannot read '%s': not a regular file",
                     shown);
        rc = RV_EIO;
        goto out;
    }
    if (st.st_size > RV_SPEC_FILE_MAX) {
        if (diags != NULL)
            diag_add(diags, DIAG_ERROR, shown, 0, 0, "",
                     "file is %lld bytes, past the limit of %d bytes; split it into smaller files",
                     (long long)st.st_size, RV_SPEC_FILE_MAX);
        rc = RV_ELIMIT;
        goto out;
    }
    /* One byte more than the limit, to notice a file that grew meanwhile. */
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (buf == NULL) {
        rc = RV_ENOMEM;
        if (diags != NULL)
            diag_add(diags, DIAG_ERROR, shown, 0, 0, "", "out of memory while reading '%s'", shown);
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > RV_SPEC_FILE_MAX)
                break;
            size_t ncap =
                cap * 2 > (size_t)RV_SPEC_FILE_MAX + 1 ? (size_t)RV_SPEC_FILE_MAX + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                rc = RV_ENOMEM;
                if (diags != NULL)
                    diag_add(diags, DIAG_ERROR, shown, 0, 0, "", "out of memory while reading '%s'",
                             shown);
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = io_fail(diags, shown, errno);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    rc = doc_parse(out, has_json_suffix(fs_path) ? DOC_FORMAT_JSON : DOC_FORMAT_YAML, shown, buf,
                   len, diags);
out:
    free(buf);
    close(fd);
    return rc;
}

void doc_file_free(struct doc_file *f)
{
    if (f == NULL)
        return;
    arena_destroy(f->arena); /* f itself lives in the arena */
}

const struct doc_pair *doc_map_get_pair(const struct doc_node *map, const char *key)
{
    if (map == NULL || key == NULL || map->kind != DOC_MAP)
        return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < map->u.map.len; i++) {
        const struct doc_node *k = map->u.map.items[i].key;
        if (k != NULL && k->kind == DOC_STRING && k->u.str.len == len &&
            memcmp(k->u.str.s, key, len) == 0)
            return &map->u.map.items[i];
    }
    return NULL;
}

const struct doc_node *doc_map_get(const struct doc_node *map, const char *key)
{
    const struct doc_pair *p = doc_map_get_pair(map, key);
    return p != NULL ? p->value : NULL;
}

const char *doc_kind_name(enum doc_kind kind)
{
    switch (kind) {
    case DOC_NULL:
        return "null";
    case DOC_BOOL:
        return "boolean";
    case DOC_INT:
        return "integer";
    case DOC_FLOAT:
        return "number";
    case DOC_STRING:
        return "string";
    case DOC_MAP:
        return "object";
    case DOC_SEQ:
        return "array";
    }
    return "unknown";
}

json_t *doc_to_json(const struct doc_node *n)
{
    json_t *j = NULL;
    if (n == NULL)
        return NULL;
    switch (n->kind) {
    case DOC_NULL:
        return json_null();
    case DOC_BOOL:
        return json_boolean(n->u.b);
    case DOC_INT:
        return json_integer((json_int_t)n->u.i);
    case DOC_FLOAT:
        if (isnan(n->u.f))
            return json_string(".nan");
        if (isinf(n->u.f))
            return json_string(n->u.f < 0 ? "-.inf" : ".inf");
        return json_real(n->u.f);
    case DOC_STRING:
        return json_stringn(n->u.str.s, n->u.str.len);
    case DOC_MAP:
        j = json_object();
        for (size_t i = 0; j != NULL && i < n->u.map.len; i++) {
            const struct doc_node *k = n->u.map.items[i].key;
            json_t *v = doc_to_json(n->u.map.items[i].value);
            /* json_object_setn_new takes v even when it fails. */
            if (v == NULL || k == NULL || k->kind != DOC_STRING ||
                json_object_setn_new(j, k->u.str.s, k->u.str.len, v) != 0) {
                if (k == NULL || k->kind != DOC_STRING)
                    json_decref(v);
                json_decref(j);
                j = NULL;
            }
        }
        return j;
    case DOC_SEQ:
        j = json_array();
        for (size_t i = 0; j != NULL && i < n->u.seq.len; i++) {
            json_t *v = doc_to_json(n->u.seq.items[i]);
            if (v == NULL || json_array_append_new(j, v) != 0) {
                json_decref(j);
                j = NULL;
            }
        }
        return j;
    }
    return NULL;
}
