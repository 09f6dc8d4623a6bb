/* list.h - the intrusive doubly-linked lists the connection objects live
 * in: a head pointer (and, for a queue, a tail pointer) and a prev/next
 * pair of fields in each node, named by the caller so one node can sit in
 * several lists. NULL-terminated, O(1) insert and unlink. Macros, so one
 * definition serves every node type with its own field names. */
#ifndef PORTICO_LIST_H
#define PORTICO_LIST_H

/* Put node n first in the list starting at head. */
#define LIST_PUSH(head, n, prev, next)                                                             \
    do {                                                                                           \
        (n)->prev = NULL;                                                                          \
        (n)->next = (head);                                                                        \
        if ((n)->next)                                                                             \
            (n)->next->prev = (n);                                                                 \
        (head) = (n);                                                                              \
    } while (0)

/* Take node n out of the list starting at head (and ending at tail, for
 * a queue: LIST_UNLINK_QUEUE); its prev and next become NULL. */
#define LIST_UNLINK_QUEUE(head, tail, n, prev, next)                                               \
    do {                                                                                           \
        if ((n)->prev)                                                                             \
            (n)->prev->next = (n)->next;                                                           \
        else                                                                                       \
            (head) = (n)->next;                                                                    \
        if ((n)->next)                                                                             \
            (n)->next->prev = (n)->prev;                                                           \
        else                                                                                       \
            (tail) = (n)->prev;                                                                    \
        (n)->prev = (n)->next = NULL;                                                              \
    } while (0)

#define LIST_UNLINK(head, n, prev, next)                                                           \
    do {                                                                                           \
        void *list_no_tail_;                                                                       \
        LIST_UNLINK_QUEUE(head, list_no_tail_, n, prev, next);                                     \
        (void)list_no_tail_;                                                                       \
    } while (0)

/* Put node n last in the queue from head to tail. */
#define LIST_APPEND_QUEUE(head, tail, n, prev, next)                                               \
    do {                                                                                           \
        (n)->next = NULL;                                                                          \
        (n)->prev = (tail);                                                                        \
        if (tail)                                                                                  \
            (tail)->next = (n);                                                                    \
        else                                                                                       \
            (head) = (n);                                                                          \
        (tail) = (n);                                                                              \
    } while (0)

#endif
