# grace.R: read a Grace run's all-models tables, and recompute the human comparison's headline figures from them,
# independently of Grace's Python (compare.json, report.json). Shipped in Grace's analysis/ and copied into every
# run's analysis/ folder, beside the tables it reads.
#
#   Rscript grace.R [ANALYSIS_DIR] [OUT_CSV]     # default: this script's folder; OUT_CSV ANALYSIS_DIR/grace_r_figures.csv
#
# or, in a session:
#   source("results/<run-id>/analysis/grace.R")
#   tables <- grace_read("results/<run-id>/analysis")   # tables$study2_exp1_all_models, ...
#
# The figures (one row each: model_name, study, source, figure, key, value), per model:
#   study 2  Jensen-Shannon divergence (bits) per goal x state cell and their mean, Pearson r over the cells x
#            utterances, the model's proportions; Exp 2 from the option probabilities, Exp 1 from the extracted
#            utterances (per trial the share of its replicates, a cell the mean over its trials);
#   study 1  the published findings tested on the model's trials (one-sided paired t-test that bets on state a
#            exceed those on b by more than MIN_EFFECT1 points, the smallest effect of interest; t.test with mu),
#            whether each is reproduced and how many, the mean bets per condition, knowledgeability;
#   both     Exp 1's stated answer against Exp 2's most probable option, per trial (report.json's agreement).
# Prompt variants: where a trial was scored in several wordings (`prompt_variant`), its Exp 2 distribution is the
# mean over them, and an Exp 1 trial's replies in every wording are taken together, as Grace's headline pools them.
# Bootstrap intervals are not recomputed (they depend on the random number generator).
# Needs R with the tidyverse (readr, dplyr, tidyr, purrr) and jsonlite; Debian: r-cran-tidyverse.

suppressPackageStartupMessages({
  library(readr)
  library(dplyr)
  library(tidyr)
  library(purrr)
  library(jsonlite)
})

UTTERANCES <- c("It was terrible", "It was bad", "It was good", "It was amazing",
                "It wasn't terrible", "It wasn't bad", "It wasn't good", "It wasn't amazing")
GOALS <- c("informative", "social", "both")
STATES2 <- c("0 hearts", "1 heart", "2 hearts", "3 hearts")
STATES1 <- c("0", "1", "2", "3")
USABLE <- c("ok", "partial")  # extraction statuses whose fields are used
MIN_EFFECT1 <- 5  # study 1's smallest effect of interest, bet points of 100 (Grace's study1 MIN_EFFECT)
AGREEMENT <- list(  # (extracted answer, Exp 2 question): report.json's agreement pairs
  study1 = list(c("initial_answer", "prior"), c("posterior_argmax", "posterior"), c("knowledge", "knowledge")),
  study2 = list(c("utterance", "utterance")))

# --- reading -------------------------------------------------------------------------------------------------

col_spec <- function(fields) {
  types <- list(string = col_character(), integer = col_double(), number = col_double(),
                boolean = col_logical())
  cols <- lapply(fields, function(f) if (is.null(types[[f$type]])) col_character() else types[[f$type]])
  names(cols) <- vapply(fields, function(f) f$name, "")
  do.call(cols_only, cols)
}

grace_read <- function(dir) {
  # Every table of datapackage.json, typed by its schema; only an empty field is missing (a reply "NA" stays text).
  pkg <- fromJSON(file.path(dir, "datapackage.json"), simplifyVector = FALSE)
  tables <- lapply(pkg$resources, function(r) {
    read_csv(file.path(dir, r$path), col_types = col_spec(r$schema$fields), na = "", trim_ws = FALSE,
             progress = FALSE)
  })
  names(tables) <- vapply(pkg$resources, function(r) r$name, "")
  tables
}

read_human <- function(dir) {
  # The human data the comparison read (copied into analysis/human/): study 2's proportions per goal x state,
  # study 1's findings and knowledgeability. Lines starting with # are comments.
  out <- list()
  for (path in list.files(dir, pattern = "\\.csv$", full.names = TRUE)) {
    lines <- read_lines(path)
    lines <- lines[cumsum(!startsWith(lines, "#")) > 0]  # the leading comment lines (a citation) dropped
    t <- read_csv(I(paste(lines, collapse = "\n")), col_types = cols(.default = col_character()),
                  progress = FALSE)
    h <- names(t)
    if (all(c("goal", "state", UTTERANCES) %in% h)) {
      state <- STATES2[as.integer(sub("^\\s*([0-3])\\s*hearts?\\s*$", "\\1", t$state)) + 1]
      if (any(is.na(state)) || !all(t$goal %in% GOALS))
        stop(path, ": goal must be informative/social/both and state '0 hearts'..'3 hearts'")
      p <- as.matrix(sapply(UTTERANCES, function(u) as.numeric(t[[u]])))
      out$study2 <- tibble(goal = t$goal, state = state) |>
        bind_cols(as_tibble(p / rowSums(p), .name_repair = "minimal") |> setNames(UTTERANCES))
    } else if (all(c("observe", "access", "state_a", "state_b", "humans") %in% h)) {
      out$findings <- t |> transmute(observe = as.numeric(observe), access = as.numeric(access),
                                     state_a = as.numeric(state_a), state_b = as.numeric(state_b),
                                     humans = tolower(humans) == "yes")
    } else if (all(c("access", "mean") %in% h)) {
      out$knowledge <- t |> transmute(access = as.numeric(access), mean = as.numeric(mean))
    } else if (all(c("goal", "utterance") %in% h)) {
      stop(path, ": grace.R reads study 2's human data as proportions per goal x state (goal, state and the 8 ",
           "utterance columns), not one row per choice")
    }
  }
  out
}

# --- measures (as the field computes them) -------------------------------------------------------------------

js_divergence <- function(p, q) {
  # Jensen-Shannon divergence in bits, after renormalising both; 0 log 0 = 0.
  p <- p / sum(p); q <- q / sum(q); m <- (p + q) / 2
  kl <- function(a) sum(ifelse(a > 0, a * log2(ifelse(a > 0, a, 1) / ifelse(m > 0, m, 1)), 0))
  min(max(0.5 * kl(p) + 0.5 * kl(q), 0), 1)
}

pearson <- function(x, y) {
  if (sd(x) == 0 || sd(y) == 0) return(NA_real_)
  max(min(cor(x, y), 1), -1)
}

paired_greater <- function(a, b, alpha, margin = 0) {
  # One-sided paired t-test that a exceeds b by more than `margin` (H0: mean(a - b) <= margin); fewer than two
  # trials: not testable; differences all equal (within numpy's allclose): decided by whether they exceed it.
  d <- a - b; n <- length(d)
  if (n < 2) return(list(statistic = NA_real_, p = NA_real_, significant = FALSE))
  if (all(abs(d - d[1]) <= 1e-8 + 1e-5 * abs(d[1]))) {
    sig <- d[1] > margin
    return(list(statistic = NA_real_, p = if (sig) 0 else 1, significant = sig))
  }
  t <- t.test(a, b, paired = TRUE, mu = margin, alternative = "greater")
  list(statistic = unname(t$statistic), p = t$p.value, significant = t$p.value < alpha)
}

figure <- function(model, study, source, figure, key, value) {
  tibble(model_name = model, study = study, source = source, figure = figure, key = as.character(key),
         value = as.numeric(value))
}

# --- study 2: utterance distributions per goal x state --------------------------------------------------------

study2_cells <- function(model, source, per_trial, human) {
  # per_trial: goal, state and the 8 utterance proportions of each trial. One figure row per measure.
  cells <- human |> select(goal, state) |>
    left_join(per_trial |> group_by(goal, state) |>
                summarise(n_trials = n(), across(all_of(UTTERANCES), mean), .groups = "drop"),
              by = c("goal", "state")) |>
    filter(!is.na(n_trials))
  if (nrow(cells) == 0) return(figure(model, "study2", source, "cells_compared", "", 0))
  hum <- human |> semi_join(cells, by = c("goal", "state"))
  mp <- as.matrix(cells[UTTERANCES]); hp <- as.matrix(hum[UTTERANCES])
  js <- vapply(seq_len(nrow(mp)), function(i) js_divergence(mp[i, ], hp[i, ]), 0)
  cell <- paste(cells$goal, cells$state, sep = " / ")
  bind_rows(
    figure(model, "study2", source, "js", "", mean(js)),
    figure(model, "study2", source, "r", "", pearson(as.vector(t(mp)), as.vector(t(hp)))),
    figure(model, "study2", source, "n_trials", "", sum(cells$n_trials)),
    figure(model, "study2", source, "cells_compared", "", nrow(cells)),
    figure(model, "study2", source, "cell_js", cell, js),
    figure(model, "study2", source, "cell_n_trials", cell, cells$n_trials),
    figure(model, "study2", source, "cell_model",
           paste(rep(cell, each = length(UTTERANCES)), UTTERANCES, sep = " / "), as.vector(t(mp))))
}

study2_exp2 <- function(exp2, human) {
  exp2 |> group_by(model_name) |> group_modify(function(d, g) {
    ok <- d |> filter(status == "ok")
    n_ok <- n_distinct(ok$trial_id)
    per_trial <- ok |> filter(question == "utterance", !is.na(goal), !is.na(state)) |>
      mutate(option = factor(option, levels = UTTERANCES)) |> filter(!is.na(option)) |>
      group_by(trial_id, goal, state, option) |> summarise(prob = mean(prob), .groups = "drop") |>
      pivot_wider(names_from = option, values_from = prob, values_fill = 0, names_expand = TRUE) |>
      mutate(total = rowSums(across(all_of(UTTERANCES)))) |>
      filter(is.finite(total), total > 0) |>
      mutate(across(all_of(UTTERANCES), ~ .x / total))
    bind_rows(figure(g$model_name, "study2", "exp2", "n_responses", "", n_ok),
              study2_cells(g$model_name, "exp2", per_trial, human)) |> select(-model_name)
  }) |> ungroup()
}

study2_exp1 <- function(exp1, human) {
  exp1 |> filter(!is.na(extraction_status)) |> group_by(model_name) |> group_modify(function(d, g) {
    d <- d |> filter(!is.na(goal), !is.na(state)) |>
      mutate(usable = extraction_status %in% USABLE & !is.na(utterance) & utterance %in% UTTERANCES)
    per_trial <- d |> filter(usable) |>
      mutate(option = factor(utterance, levels = UTTERANCES)) |>
      count(trial_id, goal, state, option, name = "k") |>
      group_by(trial_id) |> mutate(k = k / sum(k)) |> ungroup() |>
      pivot_wider(names_from = option, values_from = k, values_fill = 0, names_expand = TRUE)
    bind_rows(figure(g$model_name, "study2", "exp1", "n_responses", "", nrow(d)),
              figure(g$model_name, "study2", "exp1", "unparseable", "", sum(!d$usable)),
              study2_cells(g$model_name, "exp1", per_trial, human)) |> select(-model_name)
  }) |> ungroup()
}

# --- study 1: bets by (access, observe), the published findings, knowledgeability ----------------------------

study1_figures <- function(model, source, bets, knowledge, human, alpha) {
  # bets: per trial access, observe and its bets b0..b3 (of 100); knowledge: per trial access and its bet.
  key_cond <- function(a, o) paste0("access ", a, ", observe ", o)
  out <- list(figure(model, "study1", source, "n_trials", "", nrow(bets)))
  cond <- bets |> group_by(access, observe) |> summarise(n = n(), across(b0:b3, mean), .groups = "drop") |>
    arrange(access, observe)
  for (i in seq_len(nrow(cond))) {
    k <- key_cond(cond$access[i], cond$observe[i])
    out[[length(out) + 1]] <- figure(model, "study1", source, "condition_n_trials", k, cond$n[i])
    out[[length(out) + 1]] <- figure(model, "study1", source, "condition_mean", paste0(k, ", state ", STATES1),
                                     unlist(cond[i, c("b0", "b1", "b2", "b3")]))
  }
  reproduced <- 0
  for (i in seq_len(nrow(human$findings))) {
    f <- human$findings[i, ]
    label <- sprintf("observe %d, access %d: state %d > state %d", f$observe, f$access, f$state_a, f$state_b)
    tr <- bets |> filter(access == f$access, observe == f$observe)
    a <- tr[[paste0("b", f$state_a)]]; b <- tr[[paste0("b", f$state_b)]]
    test <- paired_greater(a, b, alpha, MIN_EFFECT1)
    rep <- !is.na(test$p) && test$significant == f$humans
    reproduced <- reproduced + rep
    out[[length(out) + 1]] <- figure(model, "study1", source,
      c("finding_n_trials", "finding_mean_a", "finding_mean_b", "finding_mean_diff", "finding_statistic",
        "finding_p_value", "finding_model_significant", "finding_reproduced"), label,
      c(nrow(tr), if (nrow(tr)) c(mean(a), mean(b), mean(a - b)) else rep(NA, 3), test$statistic, test$p,
        test$significant, rep))
  }
  out[[length(out) + 1]] <- figure(model, "study1", source, "reproduced", "", reproduced)
  know <- knowledge |> group_by(access) |> summarise(n = n(), mean = mean(bet), .groups = "drop")
  out[[length(out) + 1]] <- figure(model, "study1", source, "knowledge_mean", paste0("access ", know$access),
                                   know$mean)
  out[[length(out) + 1]] <- figure(model, "study1", source, "knowledge_n_trials", paste0("access ", know$access),
                                   know$n)
  bind_rows(out)
}

study1_exp2 <- function(exp2, human, alpha) {
  exp2 |> group_by(model_name) |> group_modify(function(d, g) {
    ok <- d |> filter(status == "ok")
    known <- ok |> filter(!is.na(access), !is.na(observe))
    post <- known |> filter(question == "posterior", option %in% STATES1) |>
      group_by(trial_id, access, observe, option) |> summarise(prob = mean(prob), .groups = "drop") |>
      pivot_wider(names_from = option, values_from = prob, values_fill = 0) |>
      mutate(across(any_of(STATES1), as.numeric))
    for (s in STATES1) if (!s %in% names(post)) post[[s]] <- 0
    post <- post |> mutate(total = `0` + `1` + `2` + `3`)
    bets <- post |> filter(is.finite(total), total > 0) |>
      transmute(trial_id, access, observe, b0 = 100 * `0` / total, b1 = 100 * `1` / total,
                b2 = 100 * `2` / total, b3 = 100 * `3` / total)
    trials <- n_distinct(known$trial_id)
    knowledge <- known |> filter(question == "knowledge") |> group_by(trial_id, access) |>
      summarise(total = sum(prob), yes = sum(prob[option == "yes"]), .groups = "drop") |>
      filter(total > 0) |> transmute(access, bet = 100 * yes / total)
    bind_rows(figure(g$model_name, "study1", "exp2", "n_responses", "", n_distinct(ok$trial_id)),
              figure(g$model_name, "study1", "exp2", "unparseable", "", trials - nrow(bets)),
              figure(g$model_name, "study1", "exp2", "knowledge_unparseable", "", trials - nrow(knowledge)),
              study1_figures(g$model_name, "exp2", bets, knowledge, human, alpha)) |> select(-model_name)
  }) |> ungroup()
}

study1_exp1 <- function(exp1, human, alpha) {
  exp1 |> filter(!is.na(extraction_status)) |> group_by(model_name) |> group_modify(function(d, g) {
    d <- d |> filter(!is.na(access), !is.na(observe)) |>
      mutate(usable = extraction_status %in% USABLE,
             given = !(is.na(p0) & is.na(p1) & is.na(p2) & is.na(p3)),
             across(c(p0, p1, p2, p3), ~ coalesce(.x, 0)),
             total = p0 + p1 + p2 + p3,
             bets_ok = usable & given & is.finite(total) & total > 0 & p0 >= 0 & p1 >= 0 & p2 >= 0 & p3 >= 0,
             know_ok = usable & !is.na(knowledge) & knowledge %in% c("yes", "no"))
    bets <- d |> filter(bets_ok) |>
      mutate(b0 = 100 * p0 / total, b1 = 100 * p1 / total, b2 = 100 * p2 / total, b3 = 100 * p3 / total) |>
      group_by(trial_id, access, observe) |> summarise(across(b0:b3, mean), .groups = "drop")
    knowledge <- d |> filter(know_ok) |> group_by(trial_id, access) |>
      summarise(bet = mean(ifelse(knowledge == "yes", 100, 0)), .groups = "drop")
    bind_rows(figure(g$model_name, "study1", "exp1", "n_responses", "", nrow(d)),
              figure(g$model_name, "study1", "exp1", "unparseable", "", sum(!d$bets_ok)),
              figure(g$model_name, "study1", "exp1", "knowledge_unparseable", "", sum(!d$know_ok)),
              study1_figures(g$model_name, "exp1", bets, knowledge, human, alpha)) |> select(-model_name)
  }) |> ungroup()
}

# --- Exp 1 vs Exp 2: the stated answer against the most probable option -----------------------------------------

stated_answers <- function(exp1, study) {
  if (study == "study1") {
    p <- as.matrix(exp1[c("p0", "p1", "p2", "p3")])
    top <- apply(p, 1, function(r) {
      if (all(is.na(r))) return(NA_character_)
      w <- which(!is.na(r) & abs(r - max(r, na.rm = TRUE)) < 1e-12)
      if (length(w) == 1) STATES1[w] else NA_character_  # a tie states no single answer
    })
    exp1 |> transmute(model_name, trial_id, prompt_variant, initial_answer = as.character(initial_answer),
                      posterior_argmax = top, knowledge)
  } else {
    exp1 |> transmute(model_name, trial_id, prompt_variant, utterance)
  }
}

agreement <- function(exp1, exp2, study) {
  # Over the extracted replies whose trial Exp 2 scored that question: how many state its most probable option
  # (Exp 2's argmax of the summed log-probabilities, the first option on a tie), the same trial in the same prompt
  # wording (tables from before wordings: all `main`).
  if (is.null(exp1) || is.null(exp2)) return(NULL)
  if (!"prompt_variant" %in% names(exp1)) exp1$prompt_variant <- "main"
  if (!"prompt_variant" %in% names(exp2)) exp2$prompt_variant <- "main"
  argmax <- exp2 |> filter(!is.na(question)) |> arrange(option_index) |>
    group_by(model_name, trial_id, prompt_variant, question) |>
    summarise(argmax = option[which.max(logprob)], .groups = "drop")
  stated <- stated_answers(exp1 |> filter(!is.na(extraction_status)), study)
  both <- intersect(unique(stated$model_name), unique(exp2$model_name))
  map_dfr(AGREEMENT[[study]], function(pair) {
    key <- paste0(pair[1], "~", pair[2])
    s <- stated |> filter(model_name %in% both) |>
      transmute(model_name, trial_id, prompt_variant, answer = .data[[pair[1]]]) |>
      inner_join(argmax |> filter(question == pair[2]), by = c("model_name", "trial_id", "prompt_variant")) |>
      filter(!is.na(answer))
    counts <- tibble(model_name = both) |>
      left_join(s |> group_by(model_name) |> summarise(pairs = n(), agree = sum(answer == argmax)),
                by = "model_name") |>
      mutate(pairs = coalesce(pairs, 0L), agree = coalesce(agree, 0L))
    bind_rows(figure(counts$model_name, study, "exp1~exp2", "agreement_pairs", key, counts$pairs),
              figure(counts$model_name, study, "exp1~exp2", "agreement_agree", key, counts$agree))
  })
}

# --- all figures -----------------------------------------------------------------------------------------------

grace_figures <- function(dir, alpha = NULL) {
  tables <- grace_read(dir)
  human <- read_human(file.path(dir, "human"))
  if (is.null(alpha)) {
    compare <- file.path(dirname(normalizePath(dir)), "compare", "compare.json")
    alpha <- if (file.exists(compare)) fromJSON(compare)$alpha else 0.05
  }
  out <- list()
  for (study in c("study1", "study2")) {
    e1 <- tables[[paste0(study, "_exp1_all_models")]]
    e2 <- tables[[paste0(study, "_exp2_all_models")]]
    if (study == "study2" && !is.null(human$study2)) {
      if (!is.null(e2)) out[[length(out) + 1]] <- study2_exp2(e2, human$study2)
      if (!is.null(e1)) out[[length(out) + 1]] <- study2_exp1(e1, human$study2)
    }
    if (study == "study1" && !is.null(human$findings)) {
      if (!is.null(e2)) out[[length(out) + 1]] <- study1_exp2(e2, human, alpha)
      if (!is.null(e1)) out[[length(out) + 1]] <- study1_exp1(e1, human, alpha)
    }
    out[[length(out) + 1]] <- agreement(e1, e2, study)
  }
  bind_rows(out) |> arrange(study, model_name, source, figure, key)
}

if (sys.nframe() == 0L) {  # run as a script (Rscript grace.R ...), not source()d
  args <- commandArgs(trailingOnly = TRUE)
  here_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  dir <- if (length(args) >= 1) args[1] else dirname(normalizePath(here_file))
  out <- if (length(args) >= 2) args[2] else file.path(dir, "grace_r_figures.csv")
  figures <- grace_figures(dir)
  write_csv(figures, out, na = "")
  cat(sprintf("grace.R: %d figures for %d model(s) -> %s\n", nrow(figures), n_distinct(figures$model_name), out))
}
