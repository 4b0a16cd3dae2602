"""Chat templates of the study's model families, for tokenizers built here from real vocabularies.

LLAMA31: Llama-3.1-Instruct's template (meta-llama/Llama-3.1-8B-Instruct tokenizer_config.json) without its
tool-calling branches, which Grace never uses: the system header with the fixed "Cutting Knowledge Date" and
"Today Date: 26 Jul 2024" (written even without a system message), trimmed turns ending in <|eot_id|>.
(Gemma-2-it's template, which rejects the system role, is in scripts/make_models.py with the tiny Gemma-2.)
"""

LLAMA31 = (
    "{{- bos_token }}\n"
    "{%- if not date_string is defined %}\n"
    "    {%- set date_string = \"26 Jul 2024\" %}\n"
    "{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system_message = \"\" %}\n"
    "{%- endif %}\n"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
    "{{- system_message }}\n"
    "{{- \"<|eot_id|>\" }}\n"
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim"
    " + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)
