/* chat-int.h - private to lib/text: the training variants of chat.c. */
#ifndef TK_CHAT_INT_H
#define TK_CHAT_INT_H

/* A chat template with {% generation %} around the assistant turns, tried
 * for a model template without them (chat.c). */
struct tk_chat_variant {
	const char *name; /* the fixture's, tests/fixtures/chat-templates/templates/NAME.jinja */
	const char *src;
};

/* In the order chat.c tries them; NULL-terminated. */
extern const struct tk_chat_variant tk_chat_variants[];

#endif
