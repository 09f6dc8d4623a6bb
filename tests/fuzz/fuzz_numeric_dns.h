/* fuzz_numeric_dns.h - for targets that load configurations: getaddrinfo
 * replaced by one that resolves numeric addresses only ("localhost" as
 * 127.0.0.1), so a run neither depends on DNS nor sends queries for the
 * names the fuzzer invents. Include it in one .c file of a target. */
#ifndef PORTICO_FUZZ_NUMERIC_DNS_H
#define PORTICO_FUZZ_NUMERIC_DNS_H

#include <dlfcn.h>
#include <netdb.h>
#include <string.h>

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    if (!real)
        real = (int (*)(const char *, const char *, const struct addrinfo *,
                        struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
    struct addrinfo h = hints ? *hints : (struct addrinfo){.ai_family = AF_UNSPEC};
    h.ai_flags |= AI_NUMERICHOST;
    if (node && strcmp(node, "localhost") == 0)
        node = "127.0.0.1";
    return real(node, service, &h, res);
}

#endif
