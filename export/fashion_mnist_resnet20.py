"""Recipe: netx_models/fashion-mnist-resnet20.net — resnet20 (CIFAR stem), b = 4, Fashion-MNIST
zero-padded to 32×32, 20 epochs with augmentation (≈ 1 h idle on 2 cores, ~3 min per epoch;
not yet completed: see the README's known limits for the resumable checkpoint)."""

from recipe import run_recipe

TRAIN = ["--arch", "resnet20", "--dataset", "fashion-mnist", "--image-size", "32", "--bits", "4",
         "--epochs", "20", "--batch-size", "128", "--lr", "0.1", "--seed", "0", "--augment",
         "--quiet"]

if __name__ == "__main__":
    run_recipe("fashion-mnist-resnet20", TRAIN, "fashion-mnist")
