"""Recipe: netx_models/mnist-mnist-cnn.net — mnist-cnn, b = 4, MNIST, 8 epochs with
augmentation (the configuration of benchmarks/train_mnist_cnn.py; ≈ 25 min on 2 cores)."""

from recipe import run_recipe

TRAIN = ["--arch", "mnist-cnn", "--dataset", "mnist", "--bits", "4", "--epochs", "8",
         "--batch-size", "128", "--lr", "0.1", "--seed", "0", "--augment", "--quiet"]

if __name__ == "__main__":
    run_recipe("mnist-mnist-cnn", TRAIN, "mnist")
