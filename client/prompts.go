package client

import "fmt"

// Stage is one of the seven stages of rebuilding trust the journal serves.
type Stage struct {
	N       int      `json:"stage"`
	Name    string   `json:"name"`
	About   string   `json:"about"`
	Prompts []Prompt `json:"prompts"`
}

// Prompt is a guided reflection. Its ID is "stage.n", like "3.2".
type Prompt struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Stages is the built-in prompt library, written for people who are
// hurting: each prompt invites, none demands, and any can be skipped.
var Stages = buildStages([]struct {
	name, about string
	prompts     []string
}{
	{"Facing the truth", "Honesty without minimising, from both of you.", []string{
		"What is one thing you have been afraid to say out loud? Your partner will be able to read what you write here, so take the time you need.",
		"What do you most need to know right now? If it helps, write what knowing it might give you.",
		"Where have you softened the truth to protect yourself, or your partner?",
		"What does being honest feel like in your body today?",
		"What would help you believe an answer you are given?",
		"What is true about this week that you have not yet written down?",
	}},
	{"Letting feelings be heard", "Anger, grief, confusion, shame, guilt, fear: all of them belong here.", []string{
		"Name the feeling that has been loudest today. Where do you notice it?",
		"What do you wish your partner understood about how this has felt for you?",
		"If your anger could speak without hurting anyone, what would it say?",
		"What are you grieving: the relationship you thought you had, a picture of the past, a future you expected?",
		"When did you last feel even a moment of calm? What was around you?",
		"What would it look like to be listened to, without being fixed or argued with?",
	}},
	{"Seeking support", "Counsellors, friends, and what to bring to them.", []string{
		"If you see a counsellor, or are thinking about it, what would you like them to know?",
		"Which conversation feels too hard to have without someone else in the room?",
		"Who in your life makes you feel steadier? When could you reach out to them?",
		"What has helped, even a little, since this began?",
		"What do you hope to understand better with help?",
		"What worries you about asking for support, and what might make it easier?",
	}},
	{"Rebuilding trust, slowly", "Consistency over promises; small things, done again and again.", []string{
		"What small, repeatable thing would help you feel safer this week?",
		"Has there been a moment, however small, when your partner did what they said they would? How did that land?",
		"What does transparency look like to you, and what feels like too much?",
		"Which commitment has been hardest to keep, and what gets in the way?",
		"What would you like to notice more of, day to day?",
		"What does trust feel like when it starts to come back, even slightly?",
	}},
	{"Understanding why", "Not to excuse or to blame, but to see clearly.", []string{
		"What was happening in your life, and between you, in the months before the affair?",
		"Which needs went unspoken or unmet, for either of you? Unmet needs can explain distance; they never make anyone responsible for another person's choice.",
		"Where did your ways of communicating start to break down?",
		"What old wounds, from before this relationship, might be part of this?",
		"What do you understand now that you did not understand a month ago?",
		"What question about why it happened are you still carrying?",
	}},
	{"Redefining the relationship", "Boundaries, shared values, new ways to talk.", []string{
		"What boundary would help you feel safe, and how would you want it honoured?",
		"Which values do you want your relationship to stand on, whatever shape it takes?",
		"What did the old relationship do well that you want to keep?",
		"What new way of checking in with each other would you like to try?",
		"How would you like to handle it when one of you feels hurt again?",
		"If you picture an ordinary good day a year from now, what is in it?",
	}},
	{"Patience and forgiveness", "Healing is not linear; forgiveness, if it comes, comes in its own time.", []string{
		"What has changed, however slightly, since you started writing here?",
		"What are you not ready to forgive yet? It is all right not to be ready.",
		"What would forgiveness mean to you, and what would it not mean?",
		"How can you be patient with yourself this week?",
		"What do you want to remember about how far you have both come?",
		"What would you like to say to yourself on a hard day, months from now?",
	}},
})

func buildStages(in []struct {
	name, about string
	prompts     []string
}) []Stage {
	var out []Stage
	for i, s := range in {
		st := Stage{N: i + 1, Name: s.name, About: s.about}
		for k, p := range s.prompts {
			st.Prompts = append(st.Prompts, Prompt{ID: fmt.Sprintf("%d.%d", i+1, k+1), Text: p})
		}
		out = append(out, st)
	}
	return out
}

// FindPrompt returns the prompt with id, like "3.2".
func FindPrompt(id string) (Prompt, bool) {
	for _, s := range Stages {
		for _, p := range s.Prompts {
			if p.ID == id {
				return p, true
			}
		}
	}
	return Prompt{}, false
}
