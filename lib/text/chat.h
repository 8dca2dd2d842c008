/* chat.h - the chat templates of Hugging Face models, rendered without
 * Jinja (chat.c).
 *
 * tk recognises the common templates (ChatML, Llama-2, Llama-3) in a model
 * directory and renders conversations as apply_chat_template() would:
 * prompts for tk-generate, and training text with the byte ranges of the
 * assistant turns for tk-tokenize's chat input (input.c).
 */
#ifndef TK_CHAT_H
#define TK_CHAT_H

#include <stddef.h>

#include "base/tk.h"

/* A chat template tk recognises in a model directory (tk renders the
 * common ones itself and has no Jinja interpreter). */
enum tk_chat_kind { TK_CHAT_CHATML = 1, TK_CHAT_LLAMA2, TK_CHAT_LLAMA3 };

struct tk_chat {
	enum tk_chat_kind kind;
	char *bos;            /* bos_token text ("" when none) */
	char *eos;            /* eos_token text ("" when none) */
	char *default_system; /* ChatML: the system message the template adds
				 when the conversation has none (NULL: none) */
};

/* Reads the chat template of model directory dir (tokenizer_config.json's
 * chat_template: a string, or a list of {name, template} of which the one
 * named "default"; else chat_template.jinja) and recognises it: ChatML
 * (<|im_start|>role\ncontent<|im_end|>\n), Llama-2 ([INST] ... [/INST]
 * with <<SYS>>) or Llama-3 (<|start_header_id|>role<|end_header_id|>).
 * TK_E_FORMAT when there is no template or the file is malformed,
 * TK_E_UNSUPPORTED for a template tk does not know; d says which.  Free
 * with tk_chat_free. */
int tk_chat_load(struct tk_chat *c, const char *dir, struct tk_diag *d);
void tk_chat_free(struct tk_chat *c);

/* Where the chat template of a tokenizer PATH is (tk-generate --tokenizer,
 * tk-tokenize -t): PATH itself when it is a directory, else the directory
 * of the file; dflt when path is NULL.  Returns dir or buf (of cap). */
const char *tk_chat_dir(const char *path, const char *dflt, char *buf, size_t cap);

/* Appends to out (NUL-terminated) what apply_chat_template(messages,
 * add_generation_prompt=True, tokenize=False) gives for the conversation of
 * an optional system message (NULL: none) and one user message.  Encode it
 * without adding special tokens (the template has them).  Returns 0 or
 * TK_E_NOMEM. */
int tk_chat_render(const struct tk_chat *c, const char *system, const char *user,
		   struct tk_buf *out);

/* One message of a conversation ({"role": ..., "content": ...}). */
struct tk_chat_msg {
	const char *role;
	const char *content;
};

/* Appends to out (NUL-terminated) what apply_chat_template(messages,
 * add_generation_prompt=True, tokenize=False) gives for the n messages m
 * (any roles for ChatML and Llama-3; Llama-2 takes an optional system
 * message first, then user and assistant turns in turn, as its template
 * demands).  ChatML adds the template's default system message when the
 * first message is not a system message.  Returns 0, TK_E_INVAL (d says
 * which message is wrong) or TK_E_NOMEM. */
int tk_chat_render_msgs(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			struct tk_buf *out, struct tk_diag *d);

/* Flags of tk_chat_render_spans. */
#define TK_CHAT_GENERATION_PROMPT 1u /* end with the assistant's header */

/* Appends to out what apply_chat_template(messages, add_generation_prompt
 * = flags & TK_CHAT_GENERATION_PROMPT, tokenize=False) gives (as
 * tk_chat_render_msgs), and, when spans is not NULL, the byte ranges
 * [spans[2i], spans[2i+1]) (offsets from where the text starts in out) of
 * the assistant turns' trained part, as TRL's training templates mark it
 * with {% generation %}: ChatML "\ncontent<|im_end|>\n" after the role,
 * Llama-3 the trimmed content and <|eot_id|>, Llama-2 " content </s>".
 * spans has room for 2 n entries; *n_spans gets the count. */
int tk_chat_render_spans(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			 unsigned flags, struct tk_buf *out, size_t *spans, int *n_spans,
			 struct tk_diag *d);

#endif
