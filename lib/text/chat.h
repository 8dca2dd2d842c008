/* chat.h - the chat templates of Hugging Face models (chat.c), rendered
 * with tk's Jinja engine (jinja.h) as apply_chat_template renders them.
 *
 * A model directory's template renders conversations: prompts for
 * tk-generate, and training text for tk-tokenize's chat input (input.c),
 * with the byte ranges of the assistant turns that assistant-only loss
 * trains on.  Those ranges come from the template's {% generation %} tags,
 * as transformers' return_assistant_tokens_mask takes them; for a template
 * without them, from a training variant of the same template with the tags
 * added: for the very templates TRL's SFTTrainer swaps its training
 * templates in for (Qwen3, Qwen2.5, Llama 3, Gemma, Gemma 3, Phi-3, as TRL
 * stores them), that training template renders the text and the spans, as
 * TRL's assistant_only_loss does; for others, the first training variant
 * (TRL's, then tk's for ChatML and Llama-2) that renders the conversation
 * to the very same text as the model's template gives the spans.
 */
#ifndef TK_CHAT_H
#define TK_CHAT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "base/tk.h"
#include "text/jinja.h"

struct tk_chat {
	tk_jinja_t *tmpl;
	tk_jinja_t *tmpl_tools; /* the template named "tool_use", which renders
				   a conversation given tools (NULL: tmpl does) */
	char *origin;         /* the file the template came from */
	cJSON *vars;          /* the special tokens (bos_token, eos_token, ...)
				 and template kwargs every render gets */
	char *bos, *eos;      /* bos_token and eos_token ("" when none) */
	tk_jinja_t **variants; /* training variants (no {% generation %} in tmpl) */
	const char **variant_names;
	int n_variants;
	int swap;             /* the variant TRL swaps in for tmpl (-1: none) */
	char *default_system; /* what tmpl writes as system message when a
				 conversation has none, ChatML's way (NULL: none) */
	struct tk_jinja_opts jopts;
};

/* Reads the chat template of model directory dir (chat_template.jinja;
 * else tokenizer_config.json's chat_template: a string, or a list of
 * {name, template} of which the one named "default") and its special tokens
 * (tokenizer_config.json's bos_token, eos_token, unk_token, sep_token,
 * pad_token, cls_token and mask_token: strings or AddedToken objects, as
 * apply_chat_template passes them).  TK_E_FORMAT when there is no template
 * or a file is malformed, TK_E_FORMAT or TK_E_UNSUPPORTED when the
 * template does not compile (d names the file and the template line).
 * Free with tk_chat_free. */
int tk_chat_load(struct tk_chat *c, const char *dir, struct tk_diag *d);

/* As tk_chat_load for template text src and an object of special tokens
 * (may be NULL); origin names it in messages. */
int tk_chat_init(struct tk_chat *c, const char *src, const cJSON *special, const char *origin,
		 struct tk_diag *d);
void tk_chat_free(struct tk_chat *c);

/* Template kwargs every render gets (apply_chat_template's **kwargs, such
 * as {"enable_thinking": false}), from a JSON object; they override the
 * special tokens of the same name.  TK_E_INVAL when json is not an object
 * or names one of messages, tools, documents, add_generation_prompt. */
int tk_chat_set_kwargs(struct tk_chat *c, const char *json, struct tk_diag *d);

/* strftime_now formats t (UTC), not the clock (as SOURCE_DATE_EPOCH). */
void tk_chat_pin_time(struct tk_chat *c, long long t);

/* Where the chat template of a tokenizer PATH is (tk-generate --tokenizer,
 * tk-tokenize -t): PATH itself when it is a directory, else the directory
 * of the file; dflt when path is NULL.  Returns dir or buf (of cap). */
const char *tk_chat_dir(const char *path, const char *dflt, char *buf, size_t cap);

/* Flags of tk_chat_apply. */
#define TK_CHAT_GENERATION_PROMPT 1u /* add_generation_prompt=True */

/* Appends to out (NUL-terminated) what apply_chat_template(messages,
 * tools=tools, add_generation_prompt=flags & TK_CHAT_GENERATION_PROMPT,
 * tokenize=False, **kwargs) gives: messages is a list of message objects
 * (a "role" string each; "content", "tool_calls", "reasoning_content" and
 * the rest as the template reads them), tools a list of JSON schemas or
 * NULL, kwargs an object of template kwargs (over those of
 * tk_chat_set_kwargs) or NULL.  Reasoning fields are aliased as
 * transformers does (reasoning_content, thinking, reasoning).
 *
 * When spans is not NULL, *spans gets a malloc'd array of 2 *n_spans byte
 * offsets from where the text starts in out, [start, end) of each
 * assistant part to train on: the template's {% generation %} blocks, or
 * a training variant's (see above; TRL's swapped-in template then renders
 * the text too); TK_E_UNSUPPORTED, naming the template, when it has no
 * {% generation %} and no variant renders the same text.
 *
 * Returns 0, TK_E_INVAL (the template raised an exception: d has its
 * message; or the messages are malformed), TK_E_FORMAT or TK_E_UNSUPPORTED
 * (a template error, d naming the file and line), or TK_E_NOMEM. */
int tk_chat_apply(const struct tk_chat *c, const cJSON *messages, const cJSON *tools,
		  const cJSON *kwargs, unsigned flags, struct tk_buf *out, size_t **spans,
		  int *n_spans, struct tk_diag *d);

/* One message of a conversation ({"role": ..., "content": ...}). */
struct tk_chat_msg {
	const char *role;
	const char *content;
};

/* tk_chat_apply with the generation prompt for n plain messages. */
int tk_chat_render_msgs(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			struct tk_buf *out, struct tk_diag *d);

/* tk_chat_render_msgs for an optional system message (NULL: none) and one
 * user message. */
int tk_chat_render(const struct tk_chat *c, const char *system, const char *user,
		   struct tk_buf *out, struct tk_diag *d);

#endif
