enum _ServerPlaceholder {}
