"""Work that runs beside the portal: the training queue (`scheduler`) and training runs (`worker`, `recipes`)."""
