/* chat-int.h - private to lib/text: the training variants of chat.c. */
#ifndef TK_CHAT_INT_H
#define TK_CHAT_INT_H

#include <stddef.h>
#include <stdint.h>

/* A chat template with {% generation %} around the assistant turns, for a
 * model template without them (chat.c). */
struct tk_chat_variant {
	const char *name;     /* the fixture's, tests/fixtures/chat-templates/templates/NAME.jinja */
	const char *original; /* the fixture of the template TRL swaps it in for (NULL: none) */
	size_t original_len;  /* its length and tk_fnv1a64 fingerprint */
	uint64_t original_fnv;
	const char *src;
};

/* In the order chat.c tries them; ends with a NULL name. */
extern const struct tk_chat_variant tk_chat_variants[];

#endif
