// Package experiment runs the comparisons behind "how much should I unfreeze?": a grid
// of strategies × training-set sizes × seeds over the features of one frozen forward
// pass, and the MTEB classification protocol that checks the harness against published
// numbers. It works on feature stores already extracted (package features) and heads
// (package head); the command `pipeline experiment` does the extraction.
//
// # The grid
//
// A Strategy says which pooled hidden states feed which head: logreg and mlp take the
// last block's features, concat4-logreg the concatenation of the top four blocks'. One
// extraction (Data) holds the union of the layers every strategy needs, and each
// strategy reads its columns from it, so the backbone runs once per split.
//
// For a shot count n (rows per class) and a seed s, the training rows are drawn by
// Sample: each class's rows, in dataset order, are shuffled with a generator seeded by s
// and the first n kept (all of them with "all"). The draws are nested (the rows of n=8
// are among those of n=16 for the same seed) and shared by every strategy, so strategies
// are compared on the same examples. Every (strategy, shots, seed) cell is fitted on its
// rows and scored on the whole test split (accuracy and macro-F1, head.Report); the
// summary gives the mean and the standard deviation over seeds (n−1 denominator, 0 for
// one seed), the trainable parameter count and the training time. Finished cells are
// written to a directory one file each, atomically, so an interrupted run resumes where
// it stopped and a rerun reuses them (Run).
//
// # The MTEB protocol
//
// RunMTEB reproduces AbsTaskClassification of MTEB 1.x (mteb/abstasks/
// AbsTaskClassification.py, _undersample_data; evaluation/evaluators/
// ClassificationEvaluator.py, logRegClassificationEvaluator): for each of n_experiments
// experiments, the array of training row indices, np.arange(N) at first and carried
// over from one experiment to the next, is shuffled in place with numpy's global legacy
// generator, and the first samples_per_label rows of each label in the shuffled order
// are kept; LogisticRegression(max_iter=100) (C=1, lbfgs, L2, tol=1e-4) is fitted on
// their float32 embeddings (so scikit-learn computes the objective in float32, as
// head.Float32 does) and scored by accuracy on the test split; the score is the mean over
// experiments. The generator is seeded with 42 by the task's constructor (AbsTask) and
// seeded again with 42 by the constructor of every evaluator (Evaluator.__init__), which
// runs after the experiment's shuffle: so every experiment's shuffle draws the same
// numbers, those of a fresh numpy.random.RandomState(42), applied to the order the
// previous experiments left. RandomState reproduces that generator bit for bit
// (MT19937, numpy's masked rejection sampling and shuffle loop), and MTEBUndersample the
// selection.
package experiment
