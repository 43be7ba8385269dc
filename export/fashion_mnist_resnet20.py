"""Recipe: netx_models/fashion-mnist-resnet20.net — resnet20 (CIFAR stem), b = 4, Fashion-MNIST
zero-padded to 32×32, 20 epochs with augmentation (≈ 45 min idle on 2 cores, ≈ 130 s per
epoch; ANN 94.00% on the test set)."""

from recipe import run_recipe

TRAIN = ["--arch", "resnet20", "--dataset", "fashion-mnist", "--image-size", "32", "--bits", "4",
         "--epochs", "20", "--batch-size", "128", "--lr", "0.1", "--seed", "0", "--augment",
         "--quiet"]

if __name__ == "__main__":
    run_recipe("fashion-mnist-resnet20", TRAIN, "fashion-mnist")
