/* unit.h - what every unit test includes: cmocka and its prerequisites. */
#ifndef PORTICO_UNIT_H
#define PORTICO_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#endif
