"""The command line (`llmjobs`, in `main`) and what `llmjobs run` starts (`runner`)."""
