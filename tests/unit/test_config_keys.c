/* test_config_keys.c - the table-driven key reader every config section uses:
 * each value type read, refused with FILE:LINE, or defaulted. */
#include "unit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "arena.h"
#include "config_int.h"

struct sample {
    bool flag;
    uint32_t count;
    uint16_t port;
    uint16_t guard; /* beside the 16-bit field: a wider store would clobber it */
    uint32_t wait_ms, idle_ms;
    char *name;
    int colour;
    char **tags;
    size_t ntags;
    bool whole;
    int seen_fn;
};

static const struct cfg_choice colours[] = {{"red", 1}, {"green", 2}, {"blue", 3}, {NULL, 0}};
static const char *const default_tags[] = {"a", "b", NULL};

static int check_tag(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                     char *const *prev, size_t nprev)
{
    if (strcmp(v, "x") == 0)
        return cfg_fail(p, n, "%s: \"x\" is not a tag (after %zu)", what, nprev);
    v[0] = (char)(v[0] == 'p' ? 'P' : v[0]); /* items may be normalised in place */
    return 0;
}

static int count_fn(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                    void *target)
{
    ((struct sample *)target)->seen_fn++;
    return 0;
}

#define AT(f) CFG_AT(struct sample, f)
static const struct cfg_key keys[] = {
    {"flag", CFG_BOOL, AT(flag), true},
    {"count", CFG_UINT, AT(count), 3, 1, 10},
    {"port", CFG_UINT, AT(port), 80, 1, 65535},
    {"wait", CFG_DURATION, AT(wait_ms), 5000},
    {"idle", CFG_DURATION_OFF, AT(idle_ms), 1000},
    {"name", CFG_STRING, AT(name)},
    {"colour", CFG_ENUM, AT(colour), 2, .choices = colours},
    {"tags", CFG_STRINGS, AT(tags), .off_n = offsetof(struct sample, ntags), .max = 3,
     .def_list = default_tags, .item = check_tag},
    {"later", CFG_LATER, .off = 0},
    {"fn", CFG_FUNC, .fn = count_fn},
    {"whole", CFG_BOOL, AT(whole), .bare = true},
};

static char err[1024];
static struct config cfg;
static struct cfg_seen seen;
static yaml_document_t doc; /* kept until the next read: seen points into it */
static bool have_doc;

static void drop_doc(void)
{
    if (have_doc)
        yaml_document_delete(&doc);
    have_doc = false;
}

/* Read text against keys into s; 0 or -1 with err set. */
static int read_sample(const char *text, struct sample *s)
{
    struct parser p = {.name = "t.yaml", .err = err, .errlen = sizeof err, .c = &cfg};
    yaml_parser_t yp;
    drop_doc();
    err[0] = '\0';
    memset(s, 0, sizeof *s);
    s->guard = 0xbeef;
    arena_free(cfg.arena);
    cfg.arena = arena_new();
    assert_non_null(cfg.arena);
    assert_true(yaml_parser_initialize(&yp));
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, strlen(text));
    assert_true(yaml_parser_load(&yp, &p.doc));
    yaml_parser_delete(&yp);
    int rc = cfg_keys_read(&p, yaml_document_get_root_node(&p.doc), keys,
                           sizeof keys / sizeof keys[0], s, "sample", "in sample", &seen);
    doc = p.doc;
    have_doc = true;
    return rc;
}

static void expect_error(const char *text, const char *want)
{
    struct sample s;
    if (read_sample(text, &s) == 0)
        fail_msg("read, expected: %s", want);
    assert_string_equal(err, want);
}

static void test_config_keys_defaults_applied(void **state)
{
    struct sample s;
    assert_int_equal(read_sample("{}", &s), 0);
    assert_true(s.flag);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.port, 80);
    assert_int_equal(s.guard, 0xbeef);
    assert_int_equal(s.wait_ms, 5000);
    assert_int_equal(s.idle_ms, 1000);
    assert_null(s.name);
    assert_int_equal(s.colour, 2);
    assert_int_equal(s.ntags, 2);
    assert_string_equal(s.tags[0], "a");
    assert_string_equal(s.tags[1], "b");
    assert_int_equal(s.seen_fn, 0);
    assert_null(cfg_seen_node(&seen, "later"));
}

static void test_config_keys_good_values_read(void **state)
{
    struct sample s;
    assert_int_equal(read_sample("flag: false\ncount: 10\nport: 65535\nwait: 2m\nidle: off\n"
                                 "name: hi\ncolour: blue\ntags: [p, q]\nlater: [anything]\n"
                                 "fn: 1\n",
                                 &s),
                     0);
    assert_false(s.flag);
    assert_int_equal(s.count, 10);
    assert_int_equal(s.port, 65535);
    assert_int_equal(s.guard, 0xbeef);
    assert_int_equal(s.wait_ms, 120000);
    assert_int_equal(s.idle_ms, 0);
    assert_string_equal(s.name, "hi");
    assert_int_equal(s.colour, 3);
    assert_int_equal(s.ntags, 2);
    assert_string_equal(s.tags[0], "P");
    assert_string_equal(s.tags[1], "q");
    assert_int_equal(s.seen_fn, 1);
    /* A CFG_LATER key is known but left to the section. */
    const yaml_node_t *later = cfg_seen_node(&seen, "later");
    assert_non_null(later);
    assert_int_equal(later->type, YAML_SEQUENCE_NODE);
    assert_int_equal(read_sample("idle: 250ms\ntags: []\n", &s), 0);
    assert_int_equal(s.idle_ms, 250);
    assert_int_equal(s.ntags, 0);
}

static void test_config_keys_bad_values_name_file_line_and_key(void **state)
{
    expect_error("\nflag: yes\n", "t.yaml:2: sample.flag: expected a boolean (true or false)");
    expect_error("count: 11\n", "t.yaml:1: sample.count: must be between 1 and 10");
    expect_error("count: x\n", "t.yaml:1: sample.count: expected a whole number, not \"x\"");
    expect_error("port: 65536\n", "t.yaml:1: sample.port: must be between 1 and 65535");
    expect_error("\n\nwait: 5\n",
                 "t.yaml:3: sample.wait: duration \"5\" has no unit (write 5s, or 5ms for "
                 "milliseconds)");
    expect_error("wait: off\n",
                 "t.yaml:1: sample.wait: invalid duration \"off\" (use 250ms, 5s, 2m or 1h)");
    expect_error("idle: never\n", "t.yaml:1: sample.idle: invalid duration \"never\" (use 250ms, "
                                  "5s, 2m or 1h, or off for no limit)");
    expect_error("name: [a]\n", "t.yaml:1: sample.name: expected a string");
    expect_error("colour: pink\n",
                 "t.yaml:1: sample.colour: expected red, green or blue, not \"pink\"");
    expect_error("tags: a\n", "t.yaml:1: sample.tags: expected a sequence");
    expect_error("tags: [a, b, c, d]\n", "t.yaml:1: sample.tags: at most 3 names");
    expect_error("tags:\n  - a\n  - x\n", "t.yaml:3: sample.tags: \"x\" is not a tag (after 1)");
    expect_error("tags: [a, [b]]\n", "t.yaml:1: sample.tags: expected a string");
    expect_error("whole: 1\n", "t.yaml:1: sample: expected a boolean (true or false)");
}

static void test_config_keys_unknown_and_repeated_keys_refused(void **state)
{
    expect_error("flag: true\n\nbogus: 1\n", "t.yaml:3: unknown key \"bogus\" in sample");
    expect_error("flags: true\n", "t.yaml:1: unknown key \"flags\" in sample");
    expect_error("flag: true\nflag: false\n", "t.yaml:2: duplicate key \"flag\" in sample");
    expect_error("[flag]\n", "t.yaml:1: sample: expected a mapping");
}

static void test_config_keys_first_mistake_in_file_order_reported(void **state)
{
    expect_error("count: 0\nflag: 3\n", "t.yaml:1: sample.count: must be between 1 and 10");
    expect_error("flag: 3\ncount: 0\n",
                 "t.yaml:1: sample.flag: expected a boolean (true or false)");
}

static int teardown(void **state)
{
    arena_free(cfg.arena);
    cfg.arena = NULL;
    drop_doc();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_keys_defaults_applied),
        cmocka_unit_test(test_config_keys_good_values_read),
        cmocka_unit_test(test_config_keys_bad_values_name_file_line_and_key),
        cmocka_unit_test(test_config_keys_unknown_and_repeated_keys_refused),
        cmocka_unit_test(test_config_keys_first_mistake_in_file_order_reported),
    };
    return cmocka_run_group_tests_name("config_keys", tests, NULL, teardown);
}
