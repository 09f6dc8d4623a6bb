/* test_hostsfile.c - the portico block in a hosts file: found, rewritten
 * and removed without a byte outside it changing, damaged blocks refused,
 * and the file replaced atomically with its mode kept. */
#include "unit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostsfile.h"

#define B HOSTSFILE_BEGIN
#define E HOSTSFILE_END

static const char *const two[] = {"127.0.0.1 alpha.tail1.ts.net", "127.0.0.1 beta.tail1.ts.net"};
static const char *const one[] = {"127.0.0.1 gamma.tail1.ts.net"};

/* rewrite, expecting success */
static char *rw(const char *in, const char *const *lines, size_t n, bool remove)
{
    char *out = NULL, err[256] = "";
    size_t outlen = 0;
    int r = hostsfile_rewrite(in, strlen(in), lines, n, remove, &out, &outlen, err, sizeof err);
    if (r != 0)
        fail_msg("rewrite failed: %s", err);
    assert_int_equal(outlen, strlen(out));
    return out;
}

/* rewrite, expecting a refusal whose message contains want */
static void refused(const char *in, const char *want)
{
    char *out = NULL, err[256] = "";
    size_t outlen = 0;
    assert_int_equal(
        hostsfile_rewrite(in, strlen(in), two, 2, false, &out, &outlen, err, sizeof err), -1);
    assert_null(out);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    /* removal is refused the same way: never a guess about a damaged block */
    assert_int_equal(
        hostsfile_rewrite(in, strlen(in), NULL, 0, true, &out, &outlen, err, sizeof err), -1);
}

/* Adding then removing gives the file back, byte for byte; adding twice
 * is the same as adding once. */
static void round_trip(const char *in, const char *want_added)
{
    char *added = rw(in, two, 2, false);
    if (want_added)
        assert_string_equal(added, want_added);
    char *again = rw(added, two, 2, false);
    assert_string_equal(again, added);
    char *back = rw(added, NULL, 0, true);
    assert_string_equal(back, in);
    free(added);
    free(again);
    free(back);
}

static void test_hostsfile_added_to_a_plain_file(void **state)
{
    round_trip("127.0.0.1 localhost\n::1 localhost\n",
               "127.0.0.1 localhost\n::1 localhost\n" B "\n127.0.0.1 alpha.tail1.ts.net\n"
               "127.0.0.1 beta.tail1.ts.net\n" E "\n");
}

static void test_hostsfile_added_to_an_empty_file(void **state)
{
    round_trip("", B "\n127.0.0.1 alpha.tail1.ts.net\n127.0.0.1 beta.tail1.ts.net\n" E "\n");
}

static void test_hostsfile_missing_final_newline_is_kept(void **state)
{
    round_trip("127.0.0.1 localhost", "127.0.0.1 localhost\n" B "\n127.0.0.1 alpha.tail1.ts.net\n"
                                      "127.0.0.1 beta.tail1.ts.net\n" E);
    /* a stray CR at the end of an LF file is the user's, not half a line break */
    round_trip("a\nb\r",
               "a\nb\r\n" B "\n127.0.0.1 alpha.tail1.ts.net\n127.0.0.1 beta.tail1.ts.net\n" E);
    round_trip("a\r\nb\r", NULL);
    /* and a later rewrite of that block keeps it without one */
    char *a = rw("127.0.0.1 localhost", two, 2, false);
    char *b = rw(a, one, 1, false);
    assert_string_equal(b, "127.0.0.1 localhost\n" B "\n127.0.0.1 gamma.tail1.ts.net\n" E);
    free(a);
    free(b);
}

static void test_hostsfile_crlf_file_gets_crlf_lines(void **state)
{
    round_trip("127.0.0.1 localhost\r\n# comment\r\n",
               "127.0.0.1 localhost\r\n# comment\r\n" B "\r\n127.0.0.1 alpha.tail1.ts.net\r\n"
               "127.0.0.1 beta.tail1.ts.net\r\n" E "\r\n");
    round_trip("127.0.0.1 localhost\r\n::1 x", NULL);
}

static void test_hostsfile_block_in_the_middle_is_replaced_in_place(void **state)
{
    const char *in = "# top\n127.0.0.1 localhost\n" B "\n127.0.0.1 old.tail1.ts.net\n" E
                     "\n10.0.0.1 nas # after the block\n\n# trailing comment";
    char *out = rw(in, one, 1, false);
    assert_string_equal(out, "# top\n127.0.0.1 localhost\n" B "\n127.0.0.1 gamma.tail1.ts.net\n" E
                             "\n10.0.0.1 nas # after the block\n\n# trailing comment");
    free(out);
    out = rw(in, NULL, 0, true);
    assert_string_equal(out, "# top\n127.0.0.1 localhost\n10.0.0.1 nas # after the block\n\n"
                             "# trailing comment");
    free(out);
}

static void test_hostsfile_empty_block_and_no_lines(void **state)
{
    char *out = rw("a\n", NULL, 0, false);
    assert_string_equal(out, "a\n" B "\n" E "\n");
    char *back = rw(out, NULL, 0, true);
    assert_string_equal(back, "a\n");
    free(out);
    free(back);
    /* removing from a file without a block changes nothing */
    out = rw("a\r\nb", NULL, 0, true);
    assert_string_equal(out, "a\r\nb");
    free(out);
}

static void test_hostsfile_markers_with_trailing_blanks_are_found(void **state)
{
    const char *in = "x\n" B "  \n1.2.3.4 old\n" E " \t\ny\n";
    char *out = rw(in, one, 1, false);
    assert_string_equal(out, "x\n" B "\n127.0.0.1 gamma.tail1.ts.net\n" E "\ny\n");
    free(out);
}

static void test_hostsfile_lookalike_lines_are_not_markers(void **state)
{
    /* indented, or another word after END: ordinary lines, left alone */
    round_trip("  " B "\n" E "x\n# END portico-old\n", NULL);
}

static void test_hostsfile_find_reports_position(void **state)
{
    const char *in = "a\r\n" B "\r\n1 x\r\n" E "\r\nb\r\n";
    struct hostsfile_block b;
    char err[256];
    assert_int_equal(hostsfile_find(in, strlen(in), &b, err, sizeof err), 1);
    assert_int_equal(b.begin, 3);
    assert_int_equal(b.end, strlen(in) - 3);
    assert_true(b.terminated);
    assert_true(b.crlf);
    assert_int_equal(b.begin_line, 2);
    assert_int_equal(b.nlines, 3);
    assert_int_equal(hostsfile_find("a\nb\n", 4, &b, err, sizeof err), 0);
}

static void test_hostsfile_second_block_refused(void **state)
{
    refused("a\n" B "\n" E "\nb\n" B "\n" E "\n",
            "line 5: a second portico block (the first begins at line 2)");
}

static void test_hostsfile_begin_without_end_refused(void **state)
{
    refused("a\n" B "\n127.0.0.1 x\n", "line 2: the portico block begun here has no");
    refused(B, "line 1: the portico block begun here has no");
}

static void test_hostsfile_nested_begin_refused(void **state)
{
    refused(B "\n1 x\n" B "\n" E "\n", "line 3: a second \"" B "\" inside the portico block");
}

static void test_hostsfile_end_without_begin_refused(void **state)
{
    refused("a\n" E "\n", "line 2: \"" E "\" without a");
    refused(B "\n" E "\n" E "\n", "line 3: \"" E "\" without a");
}

static void test_hostsfile_damaged_begin_refused(void **state)
{
    refused("# BEGIN portico managed\n1 x\n" E "\n", "line 1: a damaged portico marker");
}

static void test_hostsfile_line_break_in_an_entry_refused(void **state)
{
    const char *bad[] = {"127.0.0.1 a\n127.0.0.1 b"};
    char *out = NULL, err[256];
    size_t len;
    assert_int_equal(hostsfile_rewrite("", 0, bad, 1, false, &out, &len, err, sizeof err), -1);
    assert_null(out);
}

/* ---- the file ---------------------------------------------------------------- */

static char dir[64];

static int make_dir(void **state)
{
    strcpy(dir, "/tmp/test_hostsfile.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static char *get(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_hostsfile_update_keeps_mode_and_rest(void **state)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/hosts", dir);
    put(path, "127.0.0.1 localhost", 0640);
    assert_int_equal(hostsfile_update(path, two, 2, false, err, sizeof err), 1);
    assert_string_equal(get(path), "127.0.0.1 localhost\n" B "\n127.0.0.1 alpha.tail1.ts.net\n"
                                   "127.0.0.1 beta.tail1.ts.net\n" E);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    /* the same again writes nothing: the inode stays */
    ino_t ino = st.st_ino;
    assert_int_equal(hostsfile_update(path, two, 2, false, err, sizeof err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_ino, ino);
    assert_int_equal(hostsfile_update(path, NULL, 0, true, err, sizeof err), 1);
    assert_string_equal(get(path), "127.0.0.1 localhost");
    /* no temporary file left behind */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_hostsfile_update_follows_a_symlink(void **state)
{
    char target[128], link[128], err[512];
    snprintf(target, sizeof target, "%s/real-hosts", dir);
    snprintf(link, sizeof link, "%s/hosts-link", dir);
    put(target, "a\n", 0644);
    unlink(link);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(hostsfile_update(link, one, 1, false, err, sizeof err), 1);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_string_equal(get(target), "a\n" B "\n127.0.0.1 gamma.tail1.ts.net\n" E "\n");
}

static void test_hostsfile_update_missing_file(void **state)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/absent", dir);
    unlink(path);
    assert_int_equal(hostsfile_update(path, NULL, 0, true, err, sizeof err), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(hostsfile_update(path, one, 1, false, err, sizeof err), 1);
    assert_string_equal(get(path), B "\n127.0.0.1 gamma.tail1.ts.net\n" E "\n");
}

static void test_hostsfile_update_damaged_file_untouched(void **state)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/damaged", dir);
    put(path, "a\n" B "\n1 x\n", 0644);
    assert_int_equal(hostsfile_update(path, one, 1, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "/damaged: line 2: the portico block begun here has no"));
    assert_string_equal(get(path), "a\n" B "\n1 x\n");
    assert_int_equal(hostsfile_check_writable(path, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 2"));
}

static void test_hostsfile_check_writable(void **state)
{
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/hosts", dir);
    put(path, "a\n", 0644);
    assert_int_equal(hostsfile_check_writable(path, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/no-such-dir/hosts", dir);
    assert_int_equal(hostsfile_check_writable(path, err, sizeof err), -1);
    assert_non_null(strstr(err, "not writable"));
    assert_int_equal(hostsfile_update(path, one, 1, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create a temporary file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostsfile_added_to_a_plain_file),
        cmocka_unit_test(test_hostsfile_added_to_an_empty_file),
        cmocka_unit_test(test_hostsfile_missing_final_newline_is_kept),
        cmocka_unit_test(test_hostsfile_crlf_file_gets_crlf_lines),
        cmocka_unit_test(test_hostsfile_block_in_the_middle_is_replaced_in_place),
        cmocka_unit_test(test_hostsfile_empty_block_and_no_lines),
        cmocka_unit_test(test_hostsfile_markers_with_trailing_blanks_are_found),
        cmocka_unit_test(test_hostsfile_lookalike_lines_are_not_markers),
        cmocka_unit_test(test_hostsfile_find_reports_position),
        cmocka_unit_test(test_hostsfile_second_block_refused),
        cmocka_unit_test(test_hostsfile_begin_without_end_refused),
        cmocka_unit_test(test_hostsfile_nested_begin_refused),
        cmocka_unit_test(test_hostsfile_end_without_begin_refused),
        cmocka_unit_test(test_hostsfile_damaged_begin_refused),
        cmocka_unit_test(test_hostsfile_line_break_in_an_entry_refused),
    };
    const struct CMUnitTest files[] = {
        cmocka_unit_test(test_hostsfile_update_keeps_mode_and_rest),
        cmocka_unit_test(test_hostsfile_update_follows_a_symlink),
        cmocka_unit_test(test_hostsfile_update_missing_file),
        cmocka_unit_test(test_hostsfile_update_damaged_file_untouched),
        cmocka_unit_test(test_hostsfile_check_writable),
    };
    int failed = cmocka_run_group_tests_name("hostsfile", tests, NULL, NULL);
    return failed + cmocka_run_group_tests_name("hostsfile files", files, make_dir, remove_dir);
}
