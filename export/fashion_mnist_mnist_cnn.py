"""Recipe: netx_models/fashion-mnist-mnist-cnn.net — mnist-cnn, b = 4, Fashion-MNIST, 12
epochs with augmentation (the configuration of benchmarks/train_mnist_cnn.py; ≈ 30 min on 2
cores)."""

from recipe import run_recipe

TRAIN = ["--arch", "mnist-cnn", "--dataset", "fashion-mnist", "--bits", "4", "--epochs", "12",
         "--batch-size", "128", "--lr", "0.1", "--seed", "0", "--augment", "--quiet"]

if __name__ == "__main__":
    run_recipe("fashion-mnist-mnist-cnn", TRAIN, "fashion-mnist")
