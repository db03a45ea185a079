// UnrollModels
