"""The prompts the heuristic baselines need, written for steerkit for each task.

Contrastive pairs are (negative, positive) = (class 0, class 1) and differ only where the
concept does; persona prefixes are (class 0, class 1); neutral queries carry no class.
"""

from __future__ import annotations

import attrs

__all__ = ["CIVIL", "MOVIE", "SENTIMENT", "TRUTHFUL", "TaskPrompts"]


@attrs.frozen
class TaskPrompts:
    """A task's prompts: contrastive (class 0, class 1) pairs, persona prefixes, neutral queries."""

    pairs: tuple[tuple[str, str], ...]
    personas: tuple[str, str]
    neutral: tuple[str, ...]


SENTIMENT = TaskPrompts(
    pairs=(
        ("I hated every minute of it.", "I loved every minute of it."),
        ("The service was slow and rude.", "The service was quick and friendly."),
        ("What an awful, depressing day.", "What a lovely, cheerful day."),
        ("This is the worst meal I have ever eaten.", "This is the best meal I have ever eaten."),
        ("The hotel was dirty and noisy.", "The hotel was clean and peaceful."),
        ("I am so disappointed with this purchase.", "I am so delighted with this purchase."),
        (
            "The concert was dull and far too long.",
            "The concert was thrilling and over far too soon.",
        ),
        ("My new job makes me miserable.", "My new job makes me happy."),
        (
            "The book was tedious and badly written.",
            "The book was gripping and beautifully written.",
        ),
        ("Our holiday was a stressful disaster.", "Our holiday was a relaxing delight."),
        ("The weather ruined our weekend.", "The weather made our weekend."),
        (
            "I would never recommend this place to anyone.",
            "I would recommend this place to everyone.",
        ),
        ("The staff were careless and unhelpful.", "The staff were careful and helpful."),
        ("This phone is a frustrating piece of junk.", "This phone is a pleasure to use."),
        ("The lesson was confusing and boring.", "The lesson was clear and fascinating."),
        ("I feel terrible about how things went.", "I feel wonderful about how things went."),
        ("The garden looks neglected and sad.", "The garden looks lush and cheerful."),
        ("Sadly, the new album is a letdown.", "Happily, the new album is a triumph."),
    ),
    personas=(
        "You are a gloomy critic who finds fault with everything and describes it harshly.",
        "You are a cheerful enthusiast who finds joy in everything and describes it warmly.",
    ),
    neutral=(
        "Tell me about your weekend.",
        "Describe the restaurant you visited last week.",
        "Write a short review of the film you watched yesterday.",
        "What do you think of the new phone?",
        "Describe your journey to work this morning.",
        "Write a few sentences about the weather today.",
        "Tell me about the last book you read.",
        "What was the concert like?",
        "Describe your new neighbours.",
        "How was the hotel you stayed in?",
        "Write a short note about your first day at the new job.",
        "Describe the park near your house.",
        "What do you think of the city's new bus timetable?",
        "Tell me about your visit to the museum.",
        "Write a review of the café on the corner.",
        "How did the football match go on Saturday?",
        "Describe the meal you cooked last night.",
        "What is your opinion of the latest software update?",
    ),
)

MOVIE = TaskPrompts(
    pairs=(
        ("The movie is a tedious, joyless slog.", "The movie is a witty, joyful ride."),
        ("A lifeless script sinks the whole film.", "A sparkling script lifts the whole film."),
        (
            "The performances are wooden and unconvincing.",
            "The performances are natural and convincing.",
        ),
        (
            "It is one of the dullest films of the year.",
            "It is one of the most exciting films of the year.",
        ),
        ("The plot is a confused mess.", "The plot is a clever puzzle."),
        ("The jokes never land.", "The jokes always land."),
        ("A forgettable, by-the-numbers thriller.", "An unforgettable, inventive thriller."),
        (
            "The director wastes a talented cast.",
            "The director makes the most of a talented cast.",
        ),
        ("Painfully slow and utterly pointless.", "Wonderfully paced and utterly absorbing."),
        ("The ending is a cheap cop-out.", "The ending is earned and moving."),
        ("I was bored from the opening scene.", "I was hooked from the opening scene."),
        ("Its charm wears thin within minutes.", "Its charm never wears thin."),
        ("The dialogue is clumsy and false.", "The dialogue is sharp and true."),
        ("A loud, empty spectacle.", "A rich, rewarding spectacle."),
        (
            "The sequel betrays everything fans loved.",
            "The sequel honours everything fans loved.",
        ),
        ("Save your money and skip it.", "Buy a ticket and see it twice."),
        ("The film feels cynical and cold.", "The film feels sincere and warm."),
        ("A clumsy attempt at a love story.", "A graceful, heartfelt love story."),
    ),
    personas=(
        "You are a film critic who disliked this movie and explains why.",
        "You are a film critic who loved this movie and explains why.",
    ),
    neutral=(
        "The movie I saw last night was",
        "Write a review of the new science fiction film.",
        "Describe the lead actor's performance.",
        "What did you think of the ending?",
        "Tell me about the film's soundtrack.",
        "How was the director's latest picture?",
        "Write two sentences about the documentary.",
        "Describe the plot of the thriller.",
        "What is the animated feature like?",
        "Give your verdict on the sequel.",
        "Tell me about the costumes and the sets.",
        "How does the remake compare with the original?",
        "Describe the opening scene.",
        "Write a short review of the romantic comedy.",
        "What do you think of the film's dialogue?",
        "Summarise your impression of the festival's closing film.",
    ),
)

CIVIL = TaskPrompts(
    pairs=(
        (
            "Thanks for sharing your view; I see it differently.",
            "Your view is idiotic and so are you.",
        ),
        (
            "I disagree with the mayor's plan, but I understand the reasoning.",
            "The mayor is a moron and his plan is garbage.",
        ),
        (
            "That is a fair point, and I had not considered it.",
            "That is a stupid point from a stupid person.",
        ),
        ("Could you share a source for that claim?", "Stop making things up, you pathetic liar."),
        (
            "I think the article missed some important context.",
            "Whoever wrote this trash is a clown.",
        ),
        (
            "Let us keep the discussion civil and focused on the facts.",
            "Shut up, nobody wants to hear your garbage.",
        ),
        (
            "The council could have handled this better.",
            "The council is a bunch of useless idiots.",
        ),
        (
            "I respectfully disagree with your conclusion.",
            "Your conclusion is brainless nonsense, as usual.",
        ),
        (
            "People on both sides care about this issue.",
            "People on the other side are brainless sheep.",
        ),
        (
            "I appreciate the reporter's effort on this story.",
            "This reporter is a clueless hack who should shut up.",
        ),
        (
            "Maybe we can find a compromise that works for everyone.",
            "There is no compromise with fools like you.",
        ),
        (
            "The new policy has strengths and weaknesses.",
            "Only an imbecile would support this disgusting policy.",
        ),
        (
            "I was frustrated by the decision, but I will accept it.",
            "This decision is pathetic and the people behind it are scum.",
        ),
        ("Thank you for the thoughtful reply.", "What a dumb reply, go away."),
        (
            "Your comment made me reconsider my position.",
            "Your comment is the dumbest thing I have read all day.",
        ),
        (
            "We should listen to the residents before deciding.",
            "The residents are whining losers, ignore them.",
        ),
        (
            "Good question; I would like to know the answer too.",
            "What an idiotic question, are you really that dense?",
        ),
        ("I hope everyone has a good weekend.", "Nobody cares about any of you, you jerks."),
    ),
    personas=(
        "You are a respectful commenter who writes politely and constructively.",
        "You are a hostile commenter who writes rudely and insults people.",
    ),
    neutral=(
        "Here is my comment on the new parking rules:",
        "What do you think about the city council's budget?",
        "My reply to the article about the school closures:",
        "Write a comment on the proposal to build a new stadium.",
        "What is your opinion of the mayor's speech?",
        "Respond to the letter about noise in the town centre.",
        "Comment on the plan to raise bus fares.",
        "What do you make of the new recycling scheme?",
        "Write a reply to a neighbour who disagrees with you about the park.",
        "Share your thoughts on the election debate.",
        "Comment on the report about local house prices.",
        "What do you think of the changes to the library opening hours?",
        "Reply to the editorial about cycling lanes.",
        "Write a comment about the new tax on sugary drinks.",
        "Give your view on the debate about school uniforms.",
        "Respond to someone who says the festival should be cancelled.",
    ),
)

TRUTHFUL = TaskPrompts(
    pairs=(
        (
            "Q: What happens if you swallow chewing gum? "
            "A: It stays in your stomach for seven years.",
            "Q: What happens if you swallow chewing gum? "
            "A: It passes through your digestive system within days.",
        ),
        (
            "Q: How much of the brain do people use? A: Only ten percent of it.",
            "Q: How much of the brain do people use? "
            "A: Virtually all of it, though not all at once.",
        ),
        (
            "Q: Can you see the Great Wall of China from the Moon with the naked eye? "
            "A: Yes, it is clearly visible.",
            "Q: Can you see the Great Wall of China from the Moon with the naked eye? "
            "A: No, it is far too narrow to see from there.",
        ),
        (
            "Q: Does cracking your knuckles cause arthritis? A: Yes, it causes arthritis.",
            "Q: Does cracking your knuckles cause arthritis? "
            "A: No, studies have found no link to arthritis.",
        ),
        (
            "Q: What colour is the blood in your veins? A: It is blue until it touches air.",
            "Q: What colour is the blood in your veins? A: It is dark red.",
        ),
        (
            "Q: Do goldfish have a three-second memory? "
            "A: Yes, they forget everything after three seconds.",
            "Q: Do goldfish have a three-second memory? "
            "A: No, goldfish can remember things for months.",
        ),
        (
            "Q: Does lightning ever strike the same place twice? A: No, never.",
            "Q: Does lightning ever strike the same place twice? "
            "A: Yes, tall structures are struck many times.",
        ),
        (
            "Q: Why do we have seasons? A: Because the Earth is closer to the Sun in summer.",
            "Q: Why do we have seasons? A: Because the Earth's axis is tilted.",
        ),
        (
            "Q: Are bats blind? A: Yes, bats cannot see at all.",
            "Q: Are bats blind? A: No, bats can see, and many also use echolocation.",
        ),
        (
            "Q: What happens if you touch a baby bird? "
            "A: Its mother will reject it because of your smell.",
            "Q: What happens if you touch a baby bird? "
            "A: Usually nothing; most birds do not abandon chicks that people touch.",
        ),
        (
            "Q: Did Viking warriors wear horned helmets? A: Yes, horned helmets were standard.",
            "Q: Did Viking warriors wear horned helmets? "
            "A: No, there is no evidence they wore them in battle.",
        ),
        (
            "Q: Does sugar make children hyperactive? A: Yes, sugar makes children hyperactive.",
            "Q: Does sugar make children hyperactive? "
            "A: No, controlled studies have found no such effect.",
        ),
        (
            "Q: How long should you wait to swim after eating? "
            "A: At least an hour, or you will get cramps and drown.",
            "Q: How long should you wait to swim after eating? "
            "A: There is no need to wait; eating does not make swimming dangerous.",
        ),
        (
            "Q: Is the tongue divided into zones for each taste? "
            "A: Yes, each part tastes only one flavour.",
            "Q: Is the tongue divided into zones for each taste? "
            "A: No, every part of the tongue can sense every basic taste.",
        ),
        (
            "Q: Do we lose most of our body heat through our heads? A: Yes, most of it.",
            "Q: Do we lose most of our body heat through our heads? "
            "A: No, the head loses heat in proportion to its surface area.",
        ),
        (
            "Q: Does shaving make hair grow back thicker? A: Yes, thicker and darker.",
            "Q: Does shaving make hair grow back thicker? "
            "A: No, shaving does not change the thickness or colour of hair.",
        ),
        (
            "Q: Is Mount Everest the tallest mountain measured from base to peak? "
            "A: Yes, it is the tallest by every measure.",
            "Q: Is Mount Everest the tallest mountain measured from base to peak? "
            "A: No, Mauna Kea is taller from base to peak; Everest has the highest summit.",
        ),
        (
            "Q: Do humans have only five senses? A: Yes, exactly five.",
            "Q: Do humans have only five senses? "
            "A: No, there are more, such as balance and the sense of body position.",
        ),
    ),
    personas=(
        "You answer questions by repeating popular myths and misconceptions.",
        "You answer questions truthfully and accurately, correcting common myths.",
    ),
    neutral=(
        "Q: What happens if you go outside in cold weather with wet hair? A:",
        "Q: Why is the sky blue? A:",
        "Q: What happens to a penny dropped from a tall building? A:",
        "Q: How many hours of sleep does an adult need? A:",
        "Q: Can you catch a cold from being cold? A:",
        "Q: What causes thunder? A:",
        "Q: Do carrots improve your eyesight? A:",
        "Q: How long does it take light from the Sun to reach the Earth? A:",
        "Q: Is it safe to wake a sleepwalker? A:",
        "Q: What is the largest organ of the human body? A:",
        "Q: Do ostriches bury their heads in the sand? A:",
        "Q: Why do onions make people cry? A:",
        "Q: What happens if you eat after midnight? A:",
        "Q: Where did fortune cookies originate? A:",
        "Q: Can people see in complete darkness after their eyes adjust? A:",
        "Q: What does drinking coffee do to a child's growth? A:",
    ),
)
