# A lab analysis script in the lab's own style (tidyverse + here), reading the all-models tables where the lab's
# scripts read them: outputs/analysis/ under the project root. It knows nothing of Grace beyond the file names and
# the columns of the contract (model_name, response, the stimulus columns as the input CSV names them, the
# extracted answers), so it runs unchanged on a Grace run's analysis/ folder copied (or linked) there.
library(tidyverse)
library(here)

study1 <- read_csv(here("outputs", "analysis", "study1_exp1_all_models.csv"), show_col_types = FALSE)
study2 <- read_csv(here("outputs", "analysis", "study2_exp1_all_models.csv"), show_col_types = FALSE)
dir.create(here("outputs", "figures"), showWarnings = FALSE, recursive = TRUE)
dir.create(here("outputs", "tables"), showWarnings = FALSE, recursive = TRUE)

# Study 1: answers by model and condition
study1_summary <- study1 %>%
  group_by(model_name, access, observe) %>%
  summarise(n = n(),
            initial_answer = mean(initial_answer, na.rm = TRUE),
            knows = mean(knowledge == "yes", na.rm = TRUE),
            bet_on_3 = mean(p3, na.rm = TRUE),
            .groups = "drop")
write_csv(study1_summary, here("outputs", "tables", "study1_by_model_and_condition.csv"))

# Study 2: the response distribution per model, by goal and true state; one plot per model
study2_summary <- study2 %>%
  count(model_name, Goal, State, utterance) %>%
  group_by(model_name, Goal, State) %>%
  mutate(share = n / sum(n)) %>%
  ungroup()
write_csv(study2_summary, here("outputs", "tables", "study2_responses_by_model.csv"))

for (m in unique(study2$model_name)) {
  p <- study2 %>%
    filter(model_name == m) %>%
    ggplot(aes(x = State, fill = utterance)) +
    geom_bar(position = "fill") +
    facet_wrap(~ Goal, labeller = label_wrap_gen(30)) +
    labs(title = paste("Study 2 responses:", m), y = "share of replies")
  ggsave(here("outputs", "figures", paste0("study2_responses_", m, ".png")), p, width = 9, height = 5, dpi = 72)
}

# Reply length per goal, every model
p <- study2 %>%
  mutate(reply_chars = nchar(response)) %>%
  ggplot(aes(x = Goal, y = reply_chars)) +
  geom_boxplot() +
  facet_wrap(~ model_name) +
  scale_x_discrete(labels = function(x) str_trunc(x, 20)) +
  labs(title = "Reply length per goal", y = "characters")
ggsave(here("outputs", "figures", "study2_reply_length.png"), p, width = 9, height = 5, dpi = 72)
